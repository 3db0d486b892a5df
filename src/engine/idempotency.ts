// Publish idempotency keys (docs/protocol.md, "Publishing exactly once"): a publish that carries a client-chosen
// key is numbered and delivered once per (topic, key) within a window; a retry inside it is answered with the
// first publish's position and `duplicate: true`, and delivers nothing. The in-memory engine keeps them here; the
// Redis engine keeps them in Redis, checked and set by the same script that numbers the message.
import type { PublishResult } from './engine.js';

/** How long a key is remembered. */
export const PUBLISH_KEY_WINDOW_MS = 10 * 60_000;
/** Keys one process remembers (the oldest are forgotten first; docs say so). */
const KEYS_MAX = 100_000;

/** What a retried publish is answered: the first one's position; it delivered nothing itself. */
export function duplicateOf(first: { seq: number; epoch: string }): PublishResult {
  return { seq: first.seq, epoch: first.epoch, delivered: 0, duplicate: true };
}

/** The positions of keyed publishes of one process, bounded in count (oldest first out) and in time. */
export class PublishKeys {
  private readonly seen = new Map<string, { seq: number; epoch: string; expires: number }>();

  constructor(
    private readonly windowMs = PUBLISH_KEY_WINDOW_MS,
    private readonly max = KEYS_MAX,
    private readonly now: () => number = Date.now,
  ) {}

  /** The first publish of `key` on `topic` within the window, if there was one. */
  get(topic: string, key: string): PublishResult | undefined {
    const k = `${topic}\u0000${key}`;
    const hit = this.seen.get(k);
    if (!hit) return undefined;
    if (hit.expires > this.now()) return duplicateOf(hit);
    this.seen.delete(k);
    return undefined;
  }

  set(topic: string, key: string, position: { seq: number; epoch: string }): void {
    const k = `${topic}\u0000${key}`;
    this.seen.delete(k); // re-inserted last: the Map's order stays the order of expiry
    this.seen.set(k, { seq: position.seq, epoch: position.epoch, expires: this.now() + this.windowMs });
    if (this.seen.size > this.max) this.seen.delete(this.seen.keys().next().value!);
  }

  get size(): number {
    return this.seen.size;
  }
}

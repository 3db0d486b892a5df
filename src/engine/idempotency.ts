// Publish idempotency keys (docs/protocol.md, "Publishing exactly once"): a publish that carries a client-chosen
// key is numbered and delivered once per (topic, key) within a window; a retry inside it is answered with the
// first publish's position and `duplicate: true`, and delivers nothing. The in-memory engine keeps them here; the
// Redis engine keeps them in Redis, checked and set by the same script that numbers the message.
import type { PublishResult } from './engine.js';

/** How long a key is remembered. */
export const PUBLISH_KEY_WINDOW_MS = 10 * 60_000;
/** Keys one process remembers, in count and in bytes (the oldest are forgotten first; docs say so). */
const KEYS_MAX = 100_000;
const KEYS_BYTES_MAX = 16 * 1024 * 1024;
/** What one remembered key costs beyond its text: the Map entry, the record, the epoch string. */
const ENTRY_OVERHEAD = 96;

/** What a retried publish is answered: the first one's position; it delivered nothing itself. */
export function duplicateOf(first: { seq: number; epoch: string }): PublishResult {
  return { seq: first.seq, epoch: first.epoch, delivered: 0, duplicate: true };
}

/** The positions of keyed publishes of one process, bounded in count (oldest first out) and in time. */
export class PublishKeys {
  private readonly seen = new Map<string, { seq: number; epoch: string; expires: number }>();
  private bytes = 0;

  constructor(
    private readonly windowMs = PUBLISH_KEY_WINDOW_MS,
    private readonly max = KEYS_MAX,
    private readonly now: () => number = Date.now,
    private readonly maxBytes = KEYS_BYTES_MAX,
  ) {}

  /** The first publish of `key` on `topic` within the window, if there was one. */
  get(topic: string, key: string): PublishResult | undefined {
    const k = `${topic}\u0000${key}`;
    const hit = this.seen.get(k);
    if (!hit) return undefined;
    if (hit.expires > this.now()) return duplicateOf(hit);
    this.forget(k);
    return undefined;
  }

  set(topic: string, key: string, position: { seq: number; epoch: string }): void {
    const k = `${topic}\u0000${key}`;
    this.forget(k); // re-inserted last: the Map's order stays the order of expiry
    this.seen.set(k, { seq: position.seq, epoch: position.epoch, expires: this.now() + this.windowMs });
    this.bytes += costOf(k);
    while (this.seen.size > this.max || this.bytes > this.maxBytes) this.forget(this.seen.keys().next().value!);
  }

  get size(): number {
    return this.seen.size;
  }

  /** Bytes the remembered keys are counted at (their text as UTF-16, plus a fixed cost per entry). */
  get byteSize(): number {
    return this.bytes;
  }

  private forget(k: string): void {
    if (this.seen.delete(k)) this.bytes -= costOf(k);
  }
}

const costOf = (k: string): number => 2 * k.length + ENTRY_OVERHEAD;

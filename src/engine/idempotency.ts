// Publish idempotency keys (docs/protocol.md, "Publishing exactly once"): a publish that carries a client-chosen
// key is numbered and delivered once per (topic, key) within a window; a retry inside it is answered with the
// first publish's position and `duplicate: true`, and delivers nothing. The in-memory engine keeps them here; the
// Redis engine keeps them in Redis, checked and set by the same script that numbers the message.
import type { PublishResult } from './engine.js';

/** How long a key is remembered. */
export const PUBLISH_KEY_WINDOW_MS = 10 * 60_000;
/** Keys one process remembers, in count and in bytes (plus RESERVE). A key is never forgotten within its window (docs say so). */
const KEYS_MAX = 100_000;
const KEYS_BYTES_MAX = 16 * 1024 * 1024;
/** Of which one publisher (a client) may hold this share: a flood of one client's keys refuses that client's. */
const OWNER_SHARE = 16;
/**
 * Beyond the bounds, a reserve of this fraction of them, for clients holding fewer than LIGHT_KEYS keys: sixteen
 * clients flooding keys fill the bounds, and a client that publishes a keyed message now and then still finds room
 * (exhausting the reserve too takes hundreds of flooding clients: 25,000 keys at 64 each).
 */
const RESERVE = 0.25;
const LIGHT_KEYS = 64;
/** What one remembered key costs beyond its text: the Map entry, the record, the epoch string. */
const ENTRY_OVERHEAD = 96;

/** What a retried publish is answered: the first one's position; it delivered nothing itself. */
export function duplicateOf(first: { seq: number; epoch: string }): PublishResult {
  return { seq: first.seq, epoch: first.epoch, delivered: 0, duplicate: true };
}

interface Remembered {
  seq: number;
  epoch: string;
  expires: number;
  /** The publisher's client id ('' for the server's own publishes: the HTTP API, wills). */
  owner: string;
}

/**
 * The positions of keyed publishes of one process, each for its whole window: bounded in count and bytes by refusing
 * new keys (never by forgetting one still in its window, whose retry would then publish again, unflagged), and per
 * publisher to a share of that, so one client's flood of keys refuses its own keyed publishes, not its neighbours'.
 */
export class PublishKeys {
  private readonly seen = new Map<string, Remembered>();
  private bytes = 0;
  private readonly owners = new Map<string, { count: number; bytes: number }>();

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

  /**
   * Why a new key of `owner` on `topic` cannot be remembered for its whole window now (the expired keys make room
   * first), or undefined when it can: the publish is then refused (it did not act), never a live key forgotten.
   */
  refusal(topic: string, key: string, owner: string): string | undefined {
    const t = this.now();
    for (const [k, v] of this.seen) {
      if (v.expires > t) break; // the Map's order is the order of expiry
      this.forget(k);
    }
    const cost = costOf(`${topic}\u0000${key}`);
    const mine = this.owners.get(owner);
    if (owner !== '' && mine && (mine.count >= this.max / OWNER_SHARE || mine.bytes + cost > this.maxBytes / OWNER_SHARE)) {
      return `this client holds the most publish keys one client may within their ${this.windowMs / 60_000}-minute window; retry later`;
    }
    if (this.seen.size < this.max && this.bytes + cost <= this.maxBytes) return undefined;
    const light = (mine?.count ?? 0) < LIGHT_KEYS;
    if (light && this.seen.size < this.max * (1 + RESERVE) && this.bytes + cost <= this.maxBytes * (1 + RESERVE)) return undefined;
    return 'too many publish keys are remembered now; retry later';
  }

  set(topic: string, key: string, position: { seq: number; epoch: string }, owner = ''): void {
    const k = `${topic}\u0000${key}`;
    this.forget(k); // re-inserted last: the Map's order stays the order of expiry
    this.seen.set(k, { seq: position.seq, epoch: position.epoch, expires: this.now() + this.windowMs, owner });
    const cost = costOf(k);
    this.bytes += cost;
    const mine = this.owners.get(owner) ?? { count: 0, bytes: 0 };
    mine.count++;
    mine.bytes += cost;
    this.owners.set(owner, mine);
  }

  get size(): number {
    return this.seen.size;
  }

  /** Bytes the remembered keys are counted at (their text as UTF-16, plus a fixed cost per entry). */
  get byteSize(): number {
    return this.bytes;
  }

  private forget(k: string): void {
    const r = this.seen.get(k);
    if (!r) return;
    this.seen.delete(k);
    const cost = costOf(k);
    this.bytes -= cost;
    const mine = this.owners.get(r.owner)!;
    mine.count--;
    mine.bytes -= cost;
    if (mine.count === 0) this.owners.delete(r.owner);
  }
}

const costOf = (k: string): number => 2 * k.length + ENTRY_OVERHEAD;

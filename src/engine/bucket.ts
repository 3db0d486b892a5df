// TokenBucket: a token bucket (the reader's inbound rate, rename budgets). `rate` frames per second on average, bursts up to `burst`; a frame
// without a token is refused (rate_limited), and `strikes` refusals within one window mark the client as flooding.
// Frames are counted when they are read, so the broker's own stalls (StallClock) are credited: what a client sent
// while the loop was blocked arrives at once afterwards, and is not its fault. Pure: the clocks are injected.
import type { StallClock } from './stalls.js';

/** A stall's credit is spendable for this long after it ended (its backlog is read in the first loop turns). */
export const STALL_CREDIT_MS = 2000;
/** At most this much stalled time is credited at once (the socket buffers bound a backlog anyway). */
const STALL_CREDIT_MAX_MS = 60_000;

export interface RateLimits {
  /** Frames per second refilled into the bucket; 0 turns limiting off. */
  rate: number;
  /** Bucket size: frames that may arrive at once after a quiet period. */
  burst: number;
  /** Refused frames within `windowMs` after which the client is flooding (closed with 1008). */
  strikes: number;
  windowMs: number;
}

export type RateVerdict = 'ok' | 'limited' | 'flooding';

export class TokenBucket {
  private tokens: number;
  private last: number;
  private refused = 0;
  private windowStart: number;
  /** The stall clock's reading at the last refill. */
  private stallMark: number;
  /** Tokens for what arrived during the broker's last stalls (`rate` per stalled second), spendable until `creditUntil`. */
  private credit = 0;
  private creditUntil = 0;

  constructor(
    readonly limits: RateLimits,
    private readonly now: () => number = Date.now,
    private readonly stalls?: StallClock,
  ) {
    this.tokens = limits.burst;
    this.last = this.windowStart = now();
    this.stallMark = stalls?.blockedMs() ?? 0;
  }

  /**
   * Charges `tokens` more for a costly reply already sent (a `who` page, by size). The bucket may go into debt,
   * down to minus one burst: the next frames are refused until it refills.
   */
  charge(tokens: number): void {
    if (this.limits.rate === 0 || tokens <= 0) return;
    this.refill();
    this.tokens = Math.max(-this.limits.burst, this.tokens - tokens);
  }

  /** Takes one token for an inbound frame. */
  take(): RateVerdict {
    if (this.limits.rate === 0) return 'ok';
    const t = this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 'ok';
    }
    // A stall's credit lets in what arrived during it; it never pays a debt (a costly reply charged stays charged).
    if (this.credit >= 1 && this.tokens >= 0) {
      this.credit -= 1;
      return 'ok';
    }
    if (t - this.windowStart >= this.limits.windowMs) {
      this.windowStart = t;
      this.refused = 0;
    }
    return ++this.refused >= this.limits.strikes ? 'flooding' : 'limited';
  }

  private refill(): number {
    const t = this.now();
    this.tokens = Math.min(this.limits.burst, this.tokens + ((t - this.last) * this.limits.rate) / 1000);
    this.last = t;
    if (this.stalls) {
      // The refill above is capped at one burst; a stall's backlog is paid from its own credit instead.
      const blocked = this.stalls.blockedMs();
      const stalled = Math.min(blocked - this.stallMark, STALL_CREDIT_MAX_MS);
      this.stallMark = blocked;
      if (stalled > 0) {
        this.credit = Math.min(this.credit + (stalled * this.limits.rate) / 1000, (STALL_CREDIT_MAX_MS * this.limits.rate) / 1000);
        this.creditUntil = t + STALL_CREDIT_MS;
      } else if (t > this.creditUntil) this.credit = 0;
    }
    return t;
  }
}

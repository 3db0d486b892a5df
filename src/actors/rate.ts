// InboundRate: the reader's token bucket. `rate` frames per second on average, bursts up to `burst`; a frame
// without a token is refused (rate_limited), and `strikes` refusals within one window mark the client as flooding.
// Pure: the clock is injected, so tests drive it.

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

export class InboundRate {
  private tokens: number;
  private last: number;
  private refused = 0;
  private windowStart: number;

  constructor(
    readonly limits: RateLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = limits.burst;
    this.last = this.windowStart = now();
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
    return t;
  }
}

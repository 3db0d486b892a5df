// CircuitBreaker: one per hook kind. After `failures` consecutive failed calls it opens: calls are refused at once
// (the client hears `unavailable` without waiting on a dead backend) until `openMs` passed; then one trial call
// is let through (half-open), whose result closes or re-opens it.
export type BreakerState = 'closed' | 'open' | 'half-open';

export class CircuitBreaker {
  private failed = 0;
  private openedAt = 0;
  private trial = false;
  /** How many times it opened (metrics, tests). */
  opened = 0;

  constructor(
    private readonly failures: number,
    private readonly openMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get state(): BreakerState {
    if (this.failed < this.failures) return 'closed';
    return this.now() - this.openedAt >= this.openMs ? 'half-open' : 'open';
  }

  /** Whether a call may go now; in half-open only one trial call is let through until it reports. */
  allows(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'open' || this.trial) return false;
    this.trial = true;
    return true;
  }

  succeeded(): void {
    this.failed = 0;
    this.trial = false;
  }

  failedCall(): void {
    this.trial = false;
    this.failed++;
    if (this.failed >= this.failures) {
      if (this.failed === this.failures || this.now() - this.openedAt >= this.openMs) this.opened++;
      this.openedAt = this.now();
    }
  }
}

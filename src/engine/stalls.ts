// LoopStalls: how long this process's event loop has been blocked (a GC pause, a CPU hog, a slow synchronous call, a
// stopped or starved VM, or a load it cannot keep up with), measured by a timer that should run every `periodMs`:
// however much later than that it runs, beyond `slackMs`, was a stall. One per broker, shared by every rate bucket,
// so a client is never charged for frames that queued up in its socket while the broker could not read them.

/** What a rate bucket asks: how long the loop has been blocked in all, up to now. */
export interface StallClock {
  /** Milliseconds the loop was blocked since this clock started, a stall still in progress included. Never decreases. */
  blockedMs(): number;
}

export interface LoopStallsOptions {
  /** How often the timer should run. */
  periodMs?: number;
  /** Lateness a busy but unblocked loop has anyway; only what is beyond it counts as a stall. */
  slackMs?: number;
  /** A monotonic clock in ms (performance.now: it runs on while the process is stopped). */
  now?: () => number;
}

export class LoopStalls implements StallClock {
  readonly periodMs: number;
  readonly slackMs: number;
  private readonly now: () => number;
  private lastBeat: number;
  private total = 0;
  private reported = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: LoopStallsOptions = {}) {
    this.periodMs = options.periodMs ?? 20;
    this.slackMs = options.slackMs ?? 250;
    this.now = options.now ?? (() => performance.now());
    this.lastBeat = this.now();
  }

  /** Starts measuring; `timer: false` leaves the beats to the caller (tests drive beat() with their own clock). */
  start({ timer = true }: { timer?: boolean } = {}): this {
    if (this.running) return this;
    this.running = true;
    this.lastBeat = this.now();
    if (timer) {
      this.timer = setInterval(() => this.beat(), this.periodMs);
      this.timer.unref(); // measuring never keeps the process alive
    }
    return this;
  }

  stop(): void {
    this.running = false;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The timer's turn: the time since the previous one, beyond the period and the slack, was a stall. */
  beat(): void {
    const t = this.now();
    this.total = Math.max(this.total + this.lateness(t), this.reported);
    this.lastBeat = t;
  }

  /**
   * The stalls measured so far plus the one in progress: right after a stall, sockets are read before the timer
   * runs again (the poll phase comes first), and those reads must already see it.
   */
  blockedMs(): number {
    const now = this.running ? this.total + this.lateness(this.now()) : this.total;
    // Readings never go back (the beat that ends a stall counts it from the same lastBeat).
    this.reported = Math.max(this.reported, now);
    return this.reported;
  }

  /** Travels inside actor contexts: serialising it (the inspector, logs) shows the measure, not the timer. */
  toJSON(): { blockedMs: number } {
    return { blockedMs: Math.round(this.blockedMs()) };
  }

  private lateness(t: number): number {
    return Math.max(0, t - this.lastBeat - this.periodMs - this.slackMs);
  }
}

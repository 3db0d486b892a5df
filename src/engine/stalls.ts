// LoopStalls: how long this process's event loop has been blocked (a GC pause, a CPU hog, a slow synchronous call, a
// stopped or starved VM, or a load it cannot keep up with), measured by a timer that should run every `periodMs`:
// however much later than that it runs, beyond `slackMs`, was a stall. One per broker, shared by every rate bucket,
// so a client is never charged for frames that queued up in its socket while the broker could not read them.
// The fine timer runs only while some connection holds the clock (only connections are charged or pinged); without
// one, a coarse timer (`idlePeriodMs`) still measures, for the event-loop delay metrics: an idle node wakes ~1/s, not 50.

import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

/** What a rate bucket asks: how long the loop has been blocked in all, up to now. */
export interface StallClock {
  /** Milliseconds the loop was blocked since this clock started, a stall still in progress included. Never decreases. */
  blockedMs(): number;
}

/** The broker's stall clock as connections see it: each holds it from its start to its end (the fine timer runs meanwhile). */
export interface HeldStallClock extends StallClock {
  hold(): void;
  release(): void;
}

export interface LoopStallsOptions {
  /** How often the timer runs while some connection holds the clock. */
  periodMs?: number;
  /** How often it runs while none does (only the delay metrics read it then). */
  idlePeriodMs?: number;
  /** Lateness a busy but unblocked loop has anyway; only what is beyond it counts as a stall. */
  slackMs?: number;
  /** A monotonic clock in ms (performance.now: it runs on while the process is stopped). */
  now?: () => number;
}

export class LoopStalls implements HeldStallClock {
  readonly periodMs: number;
  readonly idlePeriodMs: number;
  readonly slackMs: number;
  /** How late each beat ran beyond its period, in ns (nodejs_eventloop_lag_* metrics; the reader resets it). */
  readonly delays: RecordableHistogram = createHistogram();
  private readonly now: () => number;
  private lastBeat: number;
  private total = 0;
  private reported = 0;
  private running = false;
  private timed = false;
  private holding = 0;
  /** The period the timer runs at now (fine while held, coarse otherwise). */
  private period: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: LoopStallsOptions = {}) {
    this.periodMs = options.periodMs ?? 20;
    this.idlePeriodMs = options.idlePeriodMs ?? 1000;
    this.slackMs = options.slackMs ?? 250;
    this.now = options.now ?? (() => performance.now());
    this.lastBeat = this.now();
    this.period = this.idlePeriodMs;
  }

  /** Connections holding the clock now. */
  get holders(): number {
    return this.holding;
  }

  /** The period the timer runs at now; undefined while it does not run (stopped, or beats driven by a test). */
  get timerMs(): number | undefined {
    return this.timer === undefined ? undefined : this.period;
  }

  /** Starts measuring; `timer: false` leaves the beats to the caller (tests drive beat() with their own clock). */
  start({ timer = true }: { timer?: boolean } = {}): this {
    if (this.running) return this;
    this.running = true;
    this.timed = timer;
    this.lastBeat = this.now();
    this.arm();
    return this;
  }

  stop(): void {
    this.running = false;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A connection starts: until it ends (release), the timer runs at the fine period. */
  hold(): void {
    if (++this.holding === 1) this.repace();
  }

  /** A connection ended; the last one puts the timer back to the coarse period. */
  release(): void {
    if (this.holding === 0) return;
    if (--this.holding === 0) this.repace();
  }

  /** The timer's turn: the time since the previous one, beyond the period and the slack, was a stall. */
  beat(): void {
    const t = this.now();
    this.delays.record(Math.max(1, Math.round((t - this.lastBeat - this.period) * 1e6)));
    this.advance(t);
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

  /** The holders went 0→1 or 1→0: what the old period measured is counted, then the timer runs at the new one. */
  private repace(): void {
    if (this.running) this.advance(this.now());
    this.period = this.holding > 0 ? this.periodMs : this.idlePeriodMs;
    this.arm();
  }

  private arm(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (!this.running || !this.timed) return;
    this.timer = setInterval(() => this.beat(), this.period);
    this.timer.unref(); // measuring never keeps the process alive
  }

  private advance(t: number): void {
    this.total = Math.max(this.total + this.lateness(t), this.reported);
    this.lastBeat = t;
  }

  private lateness(t: number): number {
    return Math.max(0, t - this.lastBeat - this.period - this.slackMs);
  }
}

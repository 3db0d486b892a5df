// The silence watch of one connection. A connection lost without a close (a laptop that slept, a network that
// changed under it) would stay `connected` and silent for ever: one that has heard nothing for two of the broker's
// heartbeats sends a ping, and one still silent a heartbeat later is taken for lost (the client reconnects and
// resumes). A client that only listens hears the broker's pongs: it is never dropped for its silence.

/** What the watch does through its connection. */
export interface SilenceHost {
  /** The broker's heartbeat (hello's `heartbeatMs`; its default before the hello). */
  heartbeatMs(): number;
  /** Sends a ping (answered by a pong, which is a frame heard). */
  ping(): void;
  /** Nothing heard for `silentMs`: the connection is lost. */
  lost(silentMs: number): void;
}

/** The step is a heartbeat, at least this: a broker set to ping very often is not a reason to give up on a slow link. */
const STEP_MIN_MS = 5_000;

export class SilenceWatch {
  private heardAt = Date.now();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly host: SilenceHost) {}

  /** Starts watching (the connection opened). */
  start(): void {
    this.heardAt = Date.now();
    this.arm();
  }

  /** A frame came. */
  heard(): void {
    this.heardAt = Date.now();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private step(): number {
    return Math.max(this.host.heartbeatMs(), STEP_MIN_MS);
  }

  private arm(): void {
    this.timer = setTimeout(() => this.check(), this.step() / 2);
  }

  private check(): void {
    const step = this.step();
    const silent = Date.now() - this.heardAt;
    if (silent >= 3 * step) {
      this.timer = undefined;
      return this.host.lost(silent);
    }
    if (silent >= 2 * step) this.host.ping();
    this.arm();
  }
}

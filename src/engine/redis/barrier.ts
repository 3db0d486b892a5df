// Barrier: resolves once everything Redis published before now has reached this node. A token sent to this node's
// own channel comes back after them (one subscriber connection delivers in Redis's order); waiters that arrive while
// a token is out share the next one. On a Redis Cluster there is no one order: each master forwards its PUBLISHes to
// the subscriber's node over its own cluster-bus link, in its order, so the token goes through every master and the
// barrier waits for all of them (a master that cannot take it publishes nothing meanwhile). Bounded by `waitMs`.

export interface BarrierOptions {
  /** The connections a token is published through: the one Redis, or every master of a Redis Cluster. */
  via: () => { publish(channel: string, message: string): Promise<unknown> }[];
  /** This node's own channel, where tokens come back (as `b<token>`). */
  channel: string;
  /** Both connections are up: otherwise a barrier resolves at once (nothing can be waited for). */
  up: () => boolean;
  waitMs: number;
}

export class Barrier {
  private batch: (() => void)[] = [];
  private token = 0;
  private inFlight: { token: number; waiting: number; resolve: () => void } | undefined;

  constructor(private readonly options: BarrierOptions) {}

  wait(): Promise<void> {
    if (!this.options.up()) return Promise.resolve();
    return new Promise((resolve) => {
      this.batch.push(resolve);
      this.send();
    });
  }

  /** One of the current barrier's tokens came back (or could not be sent): released when none is outstanding. */
  arrived(token: number): void {
    const b = this.inFlight;
    if (b?.token === token && --b.waiting <= 0) this.release();
  }

  /** Lets the current waiters go (their token timed out, or the subscriber connection closed). */
  release(): void {
    const b = this.inFlight;
    this.inFlight = undefined;
    b?.resolve();
    if (this.batch.length > 0) {
      if (this.options.up()) this.send();
      else for (const r of this.batch.splice(0)) r();
    }
  }

  private send(): void {
    if (this.inFlight || this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    const token = ++this.token;
    const timer = setTimeout(() => this.release(), this.options.waitMs);
    const via = this.options.via();
    this.inFlight = {
      token,
      waiting: via.length,
      resolve: () => {
        clearTimeout(timer);
        for (const r of batch) r();
      },
    };
    if (via.length === 0) return this.release();
    for (const conn of via) conn.publish(this.options.channel, `b${token}`).catch(() => this.arrived(token));
  }
}

// RequestOrder: the requests of one session run in arrival order on a promise chain, so its replies keep the order
// of its requests while each may wait on Redis. At most `maxInflight` counted requests wait on Redis per node;
// beyond it a request is answered `unavailable` in its turn (bounded memory while Redis is slow). A request that
// throws is answered in its turn too: `refusal(err)` when Redis could not take it, else `internal` (and logged).
import type { Logger } from 'pino';
import { ProtocolError, type FrameId } from '../../protocol/errors.js';

export interface RequestOrderOptions<S> {
  maxInflight: number;
  /** Answers `session` with an error. */
  fail: (session: S, err: ProtocolError) => void;
  /** The answer to a request that failed because Redis could not take it, or undefined (a fault). */
  refusal: (err: unknown, id: FrameId | undefined) => ProtocolError | undefined;
  log: Logger;
}

export interface Enqueued {
  /** A reply from the frame's id, when it has one. */
  id?: FrameId | undefined;
  /** Counts against maxInflight (the session's own lifecycle steps do not: they are never refused). */
  counted?: boolean;
  /** A pub: pubs behind nothing but pubs are sent to Redis at once (see waitingOthers). */
  pub?: boolean;
}

export class RequestOrder<S extends { id: string }> {
  private readonly chains = new WeakMap<S, Promise<void>>();
  /** Requests other than pub waiting in a session's chain. */
  private readonly others = new WeakMap<S, number>();
  private readonly pending = new Set<Promise<void>>();
  private inflight = 0;

  constructor(private readonly options: RequestOrderOptions<S>) {}

  /** Whether `session` has requests other than pubs waiting: while it has none, a pub may go to Redis at once. */
  waitingOthers(session: S): boolean {
    return (this.others.get(session) ?? 0) > 0;
  }

  /** Every counted request slot is taken. */
  get full(): boolean {
    return this.inflight >= this.options.maxInflight;
  }

  /** Queues `op` after the session's earlier requests. */
  enqueue(session: S, op: () => Promise<void> | void, { id, counted = true, pub = false }: Enqueued = {}): void {
    if (counted && this.full) {
      const err = new ProtocolError('unavailable', `over ${this.options.maxInflight} requests waiting on Redis; retry later`, id);
      op = () => this.options.fail(session, err);
      counted = false;
    }
    if (counted) this.inflight++;
    if (!pub) this.others.set(session, (this.others.get(session) ?? 0) + 1);
    const prev = this.chains.get(session) ?? Promise.resolve();
    const next: Promise<void> = prev
      .then(op)
      .catch((err: unknown) => {
        const refused = this.options.refusal(err, id);
        if (refused) return this.options.fail(session, refused);
        this.options.log.error({ err, client: session.id }, 'cluster engine fault while handling a request');
        this.options.fail(session, new ProtocolError('internal', 'internal error', id));
      })
      .finally(() => {
        if (counted) this.inflight--;
        if (!pub) this.others.set(session, this.others.get(session)! - 1);
        this.pending.delete(next);
      });
    this.pending.add(next);
    this.chains.set(session, next);
  }

  /**
   * A request whose work may start before its turn (a pub): behind nothing but other such requests, `start` runs at
   * once (Redis runs one connection's commands in order, so seq order = request order) and only `answer` waits its
   * turn, so a pipelining publisher is not held to one Redis round trip per message; otherwise all of it waits.
   */
  enqueueEarly<R>(session: S, start: () => Promise<R>, answer: (result: R) => void, id?: FrameId): void {
    if (this.waitingOthers(session) || this.full) return this.enqueue(session, async () => answer(await start()), { id });
    const started = start().then(
      (r) => ({ r }),
      (err: unknown) => ({ err }),
    );
    this.enqueue(
      session,
      async () => {
        const done = await started;
        if ('err' in done) throw done.err;
        answer(done.r);
      },
      { id, pub: true },
    );
  }

  /** Resolves when every request queued so far is done, or after `ms`. */
  async settle(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.pending]), new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }
}

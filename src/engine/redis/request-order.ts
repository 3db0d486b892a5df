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

/** A session's chain: its last request, and how many requests other than pubs wait in it. */
interface Chain {
  last: Promise<void>;
  others: number;
}

export class RequestOrder<S extends { id: string }> {
  /** One record per session (one lookup per request on the publish path, not one per field). */
  private readonly chains = new WeakMap<S, Chain>();
  private readonly pending = new Set<Promise<void>>();
  private inflight = 0;

  constructor(private readonly options: RequestOrderOptions<S>) {}

  /** Whether `session` has requests other than pubs waiting: while it has none, a pub may go to Redis at once. */
  waitingOthers(session: S): boolean {
    return (this.chains.get(session)?.others ?? 0) > 0;
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
    this.chain(session, this.chains.get(session), op, id, counted, pub);
  }

  private chain(session: S, chain: Chain | undefined, op: () => Promise<void> | void, id: FrameId | undefined, counted: boolean, pub: boolean): void {
    if (counted) this.inflight++;
    if (!chain) this.chains.set(session, (chain = { last: Promise.resolve(), others: 0 }));
    if (!pub) chain.others++;
    const c = chain;
    // One reaction for both outcomes (not .catch().finally(): two more promises per request on the publish path).
    const settled = () => {
      if (counted) this.inflight--;
      if (!pub) c.others--;
      this.pending.delete(next);
    };
    const next: Promise<void> = c.last.then(op).then(settled, (err: unknown) => {
      try {
        const refused = this.options.refusal(err, id);
        if (refused) return this.options.fail(session, refused);
        this.options.log.error({ err, client: session.id }, 'cluster engine fault while handling a request');
        this.options.fail(session, new ProtocolError('internal', 'internal error', id));
      } finally {
        settled();
      }
    });
    this.pending.add(next);
    c.last = next;
  }

  /**
   * A request whose work may start before its turn (a pub): behind nothing but other such requests, `start` runs at
   * once (Redis runs one connection's commands in order, so seq order = request order) and only `answer` waits its
   * turn, so a pipelining publisher is not held to one Redis round trip per message; otherwise all of it waits.
   */
  enqueueEarly<R>(session: S, start: () => Promise<R>, answer: (result: R) => void, id?: FrameId): void {
    const chain = this.chains.get(session);
    if ((chain !== undefined && chain.others > 0) || this.full) return this.enqueue(session, async () => answer(await start()), { id });
    const started = start();
    started.catch(() => undefined); // its failure is answered in its turn (below), never an unhandled rejection
    this.chain(session, chain, () => started.then(answer), id, true, true);
  }

  /** Resolves when every request queued so far is done, or after `ms`. */
  async settle(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.pending]), new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }
}

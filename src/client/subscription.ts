// Subscription: one filter held across reconnects. It keeps its per-topic positions (to resume and to drop
// duplicates), its presence map, its events and a bounded buffer for `for await`. The client feeds it frames.
import { Emitter } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { TopicPositions, type ResumeFields, type Verdict } from './positions.js';
import { applyEvent, diffMembers, toMember, type PresenceChange } from './presence.js';
import type { ClientInfo, EventFrame, Member, MsgFrame, Position, Sender, SubAck } from './wire.js';

export interface Message<T = unknown> {
  topic: string;
  seq: number;
  /** The topic's sequence epoch (absent from a protocol-1 broker). */
  epoch?: string | undefined;
  data: T;
  from?: Sender | undefined;
  ts: number;
}

export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed';

export interface SubscriptionEvents<T> {
  message: Message<T>;
  join: Member;
  leave: Member;
  timeout: Member;
  idle: Member;
  active: Member;
  rename: { member: Member; old: string };
  /** The whole presence map, after each `who` sync (first subscribe, every reconnect). */
  presence: ReadonlyMap<string, Member>;
  /** A resume after a reconnect replayed everything missed. */
  recovered: { positions: Record<string, Position> };
  /** A resume could not replay everything: refetch the app's state (positions say where the topics are now). */
  notRecovered: Verdict;
  state: SubscriptionState;
  /** The broker refused this subscription (e.g. `forbidden` on a resubscribe); it is unsubscribed. */
  error: SwitchboardError;
}

export interface SubscribeOptions {
  /** Receive presence events and keep `sub.presence` (the broker's `presence: true`). */
  presence?: boolean;
  /** Replay what the broker still holds at the first subscribe (`since: 0`). */
  history?: boolean;
  /** Resume from positions saved earlier (`sub.positions` of a previous run). */
  positions?: Record<string, Position>;
  /** Messages an async iterator may fall behind before it fails with `buffer_overflow` (default 1000). */
  bufferSize?: number;
}

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  unsubscribe(sub: Subscription<unknown>): Promise<void>;
}

export class Subscription<T = unknown> extends Emitter<SubscriptionEvents<T>> implements AsyncIterable<Message<T>> {
  private _state: SubscriptionState = 'subscribing';
  private readonly seen = new TopicPositions();
  private readonly members = new Map<string, Member>();
  private readonly streams = new Set<MessageStream<T>>();
  /** Acked on the current connection: only then do its messages count (the rest come again in its replay). */
  private live = false;
  private everSubscribed = false;
  /** The broker's memory id from the last ack (protocol 2), sent back when resuming. */
  private life: string | undefined;
  /** The last resume was sent to a protocol-1 broker as `since: 0` for a wildcard. */
  private unverified = false;
  private sync: { phase: 'waiting' | 'building'; members: Map<string, Member>; left: Set<string> } | undefined;
  readonly ready: Promise<Subscription<T>>;
  private settleReady!: { ok: (s: Subscription<T>) => void; fail: (e: SwitchboardError) => void };

  constructor(
    private readonly host: SubscriptionHost,
    readonly filter: string,
    private readonly options: SubscribeOptions = {},
  ) {
    super();
    if (options.positions) this.seen.load(options.positions);
    this.ready = new Promise<Subscription<T>>((ok, fail) => (this.settleReady = { ok, fail }));
    this.ready.catch(() => {}); // a failed subscribe is also reported through the promise subscribe() returned
  }

  get state(): SubscriptionState {
    return this._state;
  }

  get wantsPresence(): boolean {
    return this.options.presence === true;
  }

  /** Current members (id → member) of a `presence: true` subscription. */
  get presence(): ReadonlyMap<string, Member> {
    return this.members;
  }

  /** Last position seen per topic: save it to resume in another run (`subscribe(f, { positions })`). */
  get positions(): Record<string, Position> {
    return this.seen.snapshot();
  }

  unsubscribe(): Promise<void> {
    return this.host.unsubscribe(this as Subscription<unknown>);
  }

  [Symbol.asyncIterator](): AsyncIterator<Message<T>> {
    const stream = new MessageStream<T>(this.options.bufferSize ?? 1000, () => this.streams.delete(stream));
    if (this._state === 'unsubscribed') stream.end();
    else this.streams.add(stream);
    return stream;
  }

  // ---- fed by the client ----

  /** The `sub` frame's fields for this (re)subscribe to a broker speaking `protocol`. */
  subFrame(protocol = 2): { topic: string; presence?: true; life?: string } & Partial<ResumeFields> {
    const base = { topic: this.filter, ...(this.wantsPresence && { presence: true as const }) };
    if (!this.everSubscribed && !this.options.positions) return this.options.history ? { ...base, since: 0 } : base;
    const resume = this.seen.resume(this.filter);
    // Protocol 1 knows no maps (nor epochs): replay all it holds; the positions drop what was seen, unverified.
    this.unverified = protocol < 2 && typeof resume.since === 'object';
    if (this.unverified) return { ...base, since: 0 };
    // `life` of the last ack: lets the broker vouch for the topics we hold no position on.
    return { ...base, ...resume, ...(this.life !== undefined && { life: this.life }) };
  }

  acked(ack: SubAck, sent: Partial<ResumeFields>): void {
    this.live = true;
    if (typeof ack.life === 'string') this.life = ack.life;
    const resumed = this.everSubscribed || this.options.positions !== undefined;
    this.everSubscribed = true;
    if (this._state === 'subscribing') this.setState('subscribed');
    // With presence, subscribe() resolves once `presence` is filled (after the first who sync).
    if (!this.wantsPresence) this.settleReady.ok(this);
    if (sent.since === undefined) return;
    const verdict = this.unverified ? this.unverifiedVerdict() : this.seen.verdict(this.filter, sent as ResumeFields, ack);
    if (!verdict.recovered) this.emit('notRecovered', verdict);
    else if (resumed) this.emit('recovered', { positions: verdict.positions });
  }

  /** The subscribe was refused: the subscription ends. */
  refused(err: SwitchboardError): void {
    this.settleReady.fail(err);
    if (this.everSubscribed) this.emit('error', err);
    this.end();
  }

  /** The connection dropped: it resubscribes on the next one. */
  disconnected(): void {
    this.live = false;
    this.sync = undefined;
    if (this._state === 'subscribed') this.setState('subscribing');
  }

  /** Delivers a `msg` frame when it is new to this subscription; true when it was. */
  deliver(frame: MsgFrame): boolean {
    if (!this.live || !this.seen.accept(frame.topic, frame.seq, frame.epoch)) return false;
    const message: Message<T> = { topic: frame.topic, seq: frame.seq, epoch: frame.epoch, data: frame.data as T, from: frame.from, ts: frame.ts };
    for (const s of this.streams) s.push(message);
    this.emit('message', message);
    return true;
  }

  presenceEvent(frame: EventFrame): void {
    if (this.sync?.phase === 'waiting') return; // the coming `who` snapshot already includes it
    if (this.sync) {
      if (frame.event === 'leave' || frame.event === 'timeout') this.sync.left.add(frame.client.id);
      applyEvent(this.sync.members, frame);
      return;
    }
    const change = applyEvent(this.members, frame);
    if (change) this.emitChange(change);
  }

  syncStarted(): void {
    this.sync = { phase: 'waiting', members: new Map(), left: new Set() };
  }

  /** One page of the `who` snapshot; the last one swaps it in and tells the app what really changed. */
  syncPage(clients: readonly (ClientInfo & { state?: string })[], last: boolean, quiet: ReadonlySet<string>): void {
    const sync = this.sync;
    if (!sync) return;
    sync.phase = 'building';
    for (const c of clients) if (!sync.left.has(c.id) && !sync.members.has(c.id)) sync.members.set(c.id, toMember(c));
    if (!last) return;
    this.sync = undefined;
    const first = !this.hasSynced;
    const changes = first ? [] : diffMembers(this.members, sync.members, quiet);
    this.members.clear();
    for (const [id, m] of sync.members) this.members.set(id, m);
    this.hasSynced = true;
    for (const c of changes) this.emitChange(c);
    this.emit('presence', this.members);
    this.settleReady.ok(this);
  }
  private hasSynced = false;

  /** The presence `who` failed (e.g. `forbidden`): the map keeps what it had, events go on. */
  syncFailed(err: SwitchboardError): void {
    this.sync = undefined;
    this.emit('error', err);
    this.settleReady.ok(this);
  }

  /** Unsubscribed or the client closed: iterators finish, events stop. */
  end(): void {
    if (this._state === 'unsubscribed') return;
    this.live = false;
    this.setState('unsubscribed');
    for (const s of this.streams) s.end();
    this.streams.clear();
  }

  /** A protocol-1 broker cannot say whether a wildcard's positions still hold (a restart renumbers silently). */
  private unverifiedVerdict(): Verdict {
    const missed = Object.fromEntries(Object.keys(this.seen.snapshot()).map((t) => [t, 'unknown_position' as const]));
    return { recovered: false, reason: 'unknown_position', missed, positions: {} };
  }

  private emitChange(c: PresenceChange): void {
    if (c.event === 'rename') this.emit('rename', { member: c.member, old: c.old });
    else this.emit(c.event, c.member);
  }

  private setState(state: SubscriptionState): void {
    this._state = state;
    this.emit('state', state);
  }
}

/** One `for await` over a subscription: its own bounded buffer; falling too far behind is an error, not a silent drop. */
class MessageStream<T> implements AsyncIterator<Message<T>> {
  private readonly buffer: Message<T>[] = [];
  private waiter: { resolve: (r: IteratorResult<Message<T>>) => void; reject: (e: unknown) => void } | undefined;
  private done = false;
  private failure: SwitchboardError | undefined;

  constructor(
    private readonly bound: number,
    private readonly detach: () => void,
  ) {}

  push(m: Message<T>): void {
    if (this.done) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: m, done: false });
      return;
    }
    if (this.buffer.length >= this.bound) {
      this.failure = new SwitchboardError('buffer_overflow', `the iterator fell more than ${this.bound} messages behind`);
      this.done = true;
      this.detach();
      return;
    }
    this.buffer.push(m);
  }

  end(): void {
    this.done = true;
    if (this.waiter) {
      this.waiter.resolve({ value: undefined, done: true });
      this.waiter = undefined;
    }
  }

  next(): Promise<IteratorResult<Message<T>>> {
    const m = this.buffer.shift();
    if (m) return Promise.resolve({ value: m, done: false });
    if (this.failure) {
      const err = this.failure;
      this.failure = undefined;
      return Promise.reject(err);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  return(): Promise<IteratorResult<Message<T>>> {
    this.done = true;
    this.buffer.length = 0;
    this.detach();
    return Promise.resolve({ value: undefined, done: true });
  }
}

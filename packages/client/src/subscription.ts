// Subscription: one filter held across reconnects. It keeps its per-topic positions (to resume and to drop
// duplicates), its recovery verdict and presence map as state, and the rule of docs/client.md: a message it
// accepted goes to a listener or iterator exactly once (held in a bounded backlog until its first one is there), or
// the subscription fails with `buffer_overflow`. The client feeds it frames.
import { withinRun, type Run } from './departed.js';
import { Emitter } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { MessageStream } from './message-stream.js';
import { TopicPositions, trimmedReplays, type Recovery, type ResumeFields } from './positions.js';
import { PresenceMap, type PresenceChange } from './presence.js';
import type { ClientInfo, EventFrame, Member, Position, Sender, SubAck } from './wire.js';

export interface Message<T = unknown> {
  topic: string;
  seq: number;
  /** The topic's sequence epoch (absent from a protocol-1 broker). */
  epoch?: string | undefined;
  data: T;
  from?: Sender | undefined;
  ts: number;
}

/**
 * `unsubscribed`: made by `client.subscription()` and not subscribed yet, or ended (unsubscribe(), client closed);
 * `subscribing` (also while reconnecting); `subscribed`; `failed`: refused by the broker or `buffer_overflow`
 * (`sub.error` says which). A subscription is used once: after it ended or failed, make a new one (pass it the old
 * one's `positions` to go on where it stopped).
 */
export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed' | 'failed';

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
  /** A replay or resume delivered everything missed (also kept as `sub.recovery`). */
  recovered: Recovery;
  /** A replay or resume could not deliver everything: refetch the app's state (also kept as `sub.recovery`). */
  notRecovered: Recovery;
  state: SubscriptionState;
  /** The subscription failed (the broker refused it, or `buffer_overflow`); also kept as `sub.error`. */
  error: SwitchboardError;
}

export interface SubscribeOptions {
  /** Receive presence events and keep `sub.presence` (the broker's `presence: true`). */
  presence?: boolean;
  /**
   * Replay the topics' messages from their first at the first subscribe (`since: 0`): a topic whose history the broker
   * trimmed (it no longer holds the first) replays what the broker still holds of it, and the recovery verdict says
   * `history_trimmed` for it (the older messages were missed).
   */
  history?: boolean;
  /** Resume from positions saved earlier (`sub.positions` of a previous run). */
  positions?: Readonly<Record<string, Position>>;
  /**
   * Messages held before the subscription's first listener or iterator, and messages an iterator may fall behind;
   * beyond it the subscription fails with `buffer_overflow` (default 1000). Messages the client's own `message`
   * listeners already had are let go first: only a message nobody has seen can make it fail.
   */
  bufferSize?: number;
}

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  /** Sends the `sub` (now or at the next connection). */
  start(sub: Subscription<unknown>): void;
  unsubscribe(sub: Subscription<unknown>): Promise<void>;
  /** The subscription failed on its own (`buffer_overflow`): forget it, `unsub` at the broker. */
  failed(sub: Subscription<unknown>, err: SwitchboardError): void;
}

const DEFAULT_BUFFER = 1000;

export class Subscription<T = unknown> extends Emitter<SubscriptionEvents<T>> implements AsyncIterable<Message<T>> {
  private _state: SubscriptionState = 'unsubscribed';
  private _recovery: Recovery | undefined;
  private _error: SwitchboardError | undefined;
  private readonly seen = new TopicPositions();
  /**
   * Per topic, the last message handed to the app (a `message` listener called, an iterator's `next()` answered):
   * what `positions` says. `seen` runs ahead of it by what is still buffered, and a run that saved it and stopped
   * would resume past messages it never handled.
   */
  private readonly handed = new TopicPositions();
  /** Per topic, the first message this subscription took in a row up to `seen` (same epoch, no gap): what it took. */
  private readonly took = new Map<string, Position>();
  private readonly presenceMap = new PresenceMap();
  private readonly streams = new Set<MessageStream<Message<T>>>();
  /** Accepted before the first listener or iterator, oldest first (`seen`: the client's listeners had it). */
  private backlog: { message: Message<T>; seen: boolean }[] = [];
  private flushQueued = false;
  private readonly bound: number;
  /** Acked on the current connection: only then do its messages count (the rest come again in its replay). */
  private live = false;
  private everSubscribed = false;
  /** The broker's memory id from the last ack (protocol 2), sent back when resuming. */
  private life: string | undefined;
  /** The last resume was sent to a protocol-1 broker as `since: 0` for a wildcard. */
  private unverified = false;
  private ready: Promise<this> | undefined;
  /** Ended (unsubscribe(), the client closed: also before it was ever subscribed) or failed: used once. */
  private ended = false;
  private settleReady: { ok: () => void; fail: (e: SwitchboardError) => void } | undefined;

  /** Made by `client.subscription()`; options are checked there. */
  constructor(
    private readonly host: SubscriptionHost,
    readonly filter: string,
    private readonly options: SubscribeOptions = {},
    positions?: ReadonlyMap<string, Position>,
  ) {
    super();
    this.bound = options.bufferSize ?? DEFAULT_BUFFER;
    if (positions) {
      this.seen.load(positions);
      this.handed.load(positions);
    }
  }

  get state(): SubscriptionState {
    return this._state;
  }

  /** The last recovery verdict (after a subscribe with `history` or `positions`, and after each resume); else undefined. */
  get recovery(): Recovery | undefined {
    return this._recovery;
  }

  /** Why the subscription failed (state `failed`). */
  get error(): SwitchboardError | undefined {
    return this._error;
  }

  get wantsPresence(): boolean {
    return this.options.presence === true;
  }

  /** Current members (id → member) of a `presence: true` subscription. */
  get presence(): ReadonlyMap<string, Member> {
    return this.presenceMap.members;
  }

  /** Per topic, the position of the last message handed to the app: save it to resume in another run (`subscription(f, { positions })`). */
  get positions(): Record<string, Position> {
    return this.handed.snapshot();
  }

  /** Messages accepted and not yet taken by a listener or iterator. */
  get buffered(): number {
    return this.backlog.length;
  }

  /**
   * Subscribes (once; later calls return the same promise). Resolves at the broker's ack (with `presence`: after the
   * first `who` sync), when `recovery` is set; rejects with the broker's error. Made while offline it waits.
   */
  subscribe(): Promise<this> {
    if (this.ready) return this.ready;
    if (this._state !== 'unsubscribed' || this.ended) return Promise.reject(new SwitchboardError('closed', `the subscription to '${this.filter}' has ended`));
    this.ready = new Promise<this>((ok, fail) => {
      // Settled once: afterwards nobody waits on it (a later refusal is told as an event only).
      const done = () => (this.settleReady = undefined);
      this.settleReady = { ok: () => (done(), ok(this)), fail: (e) => (done(), fail(e)) };
    });
    this.ready.catch(() => {}); // also told as the `error` event: a subscribe() nobody awaits must not crash Node
    this.setState('subscribing');
    this.host.start(this as Subscription<unknown>);
    return this.ready;
  }

  unsubscribe(): Promise<void> {
    return this.host.unsubscribe(this as Subscription<unknown>);
  }

  [Symbol.asyncIterator](): AsyncIterator<Message<T>> {
    const stream = new MessageStream<Message<T>>(this.bound, () => this.streams.delete(stream), (m) => this.handOut(m));
    if (this._state === 'failed') stream.fail(this._error!);
    else if (this.ended) stream.end();
    else {
      this.streams.add(stream);
      this.queueFlush();
    }
    return stream;
  }

  protected override listenerAdded(event: keyof SubscriptionEvents<T>): void {
    if (event === 'message') this.queueFlush();
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
    if (this.ended) return;
    this.live = true;
    if (typeof ack.life === 'string') this.life = ack.life;
    this.everSubscribed = true;
    if (sent.since !== undefined) {
      this._recovery = this.unverified ? this.seen.unverifiedVerdict() : this.seen.verdict(this.filter, sent as ResumeFields, ack);
      // What the verdict says was missed moves what the app was handed too: it is told, and resumes from there. Not
      // a trimmed topic's: what the broker still holds of it follows (the verdict kept its position to take it), and
      // `positions` never claims a message the app was not handed; if none follows, the next live one moves it.
      const r = this._recovery;
      const replayed = this.unverified ? new Set<string>() : trimmedReplays(ack);
      for (const topic of Object.keys(r.missed)) {
        if (!replayed.has(topic)) this.handed.place(topic, r.positions[topic]);
        this.took.delete(topic); // a gap: what it took before is no longer a run up to its position
      }
    }
    this.setState('subscribed');
    // The verdict is state before anyone hears of it: subscribe() resolves (with presence: after the sync) with it set.
    if (!this.wantsPresence) this.settleReady?.ok();
    const verdict = this._recovery;
    if (sent.since === undefined || !verdict) return;
    this.emit(verdict.recovered ? 'recovered' : 'notRecovered', verdict);
  }

  /** The broker refused the subscribe (at first, or on a resubscribe): the subscription fails. True when subscribe()'s promise carried it. */
  refused(err: SwitchboardError): boolean {
    const waiting = this.settleReady !== undefined;
    this.fail(err);
    return waiting;
  }

  /** The connection dropped: it resubscribes on the next one. */
  disconnected(): void {
    this.live = false;
    this.presenceMap.syncEnded();
    if (this._state === 'subscribed') this.setState('subscribing');
  }

  /**
   * Takes `message` when it is new to this subscription (true); it then reaches a listener or iterator exactly once.
   * `seen`: the client's own `message` listeners get it too.
   */
  accept(message: Message<unknown>, seen: boolean): boolean {
    if (!this.live || !this.seen.accept(message.topic, message.seq, message.epoch)) return false;
    const first = this.took.get(message.topic);
    if (!first || first.epoch !== message.epoch) this.took.set(message.topic, { seq: message.seq, epoch: message.epoch });
    const m = message as Message<T>;
    if (this.backlog.length === 0 && this.hasTaker()) {
      this.deliver([{ message: m, seen }]);
      return true;
    }
    if (this.backlog.length >= this.bound) {
      // What the client's listeners had may go (the oldest of them); a message nobody has seen may not.
      const had = this.backlog.findIndex((b) => b.seen);
      if (had < 0) {
        this.overflow(`more than ${this.bound} messages were held before a listener or iterator took them (bufferSize)`);
        return true;
      }
      this.backlog.splice(had, 1);
    }
    this.backlog.push({ message: m, seen });
    this.queueFlush();
    return true;
  }

  /** Did this subscription take `message` earlier (a copy of it came again: a replay asked by another one)? */
  hadEarlier(message: Message<unknown>): boolean {
    return withinRun(this.run(message.topic), message);
  }

  /** What it took of `topic` in a row (same epoch, no gap), first to last; undefined: nothing. */
  run(topic: string): Run | undefined {
    const first = this.took.get(topic);
    const last = this.seen.get(topic);
    return first !== undefined && last !== undefined && first.epoch === last.epoch ? { epoch: first.epoch, first: first.seq, last: last.seq } : undefined;
  }

  /** The topics it took messages of (for `run`). */
  tookTopics(): IterableIterator<string> {
    return this.took.keys();
  }

  presenceEvent(frame: EventFrame): void {
    // Not acked on this connection yet (another subscription of the filter asked for presence first): the `who`
    // sent after our ack includes it.
    if (!this.live) return;
    const change = this.presenceMap.event(frame);
    if (change) this.emitChange(change);
  }

  syncStarted(): void {
    this.presenceMap.syncStarted();
  }

  /** One page of the `who` snapshot; the last one swaps it in and tells the app what really changed. */
  syncPage(clients: readonly (ClientInfo & { state?: string })[], last: boolean, quiet: ReadonlySet<string>): void {
    const changes = this.presenceMap.syncPage(clients, last, quiet);
    if (!changes) return;
    for (const c of changes) this.emitChange(c);
    this.emit('presence', this.presenceMap.members);
    this.settleReady?.ok();
  }

  /** The presence `who` failed (e.g. `forbidden`): the map keeps what it had, events go on. */
  syncFailed(err: SwitchboardError): void {
    this.presenceMap.syncEnded();
    this.emit('error', err);
    this.settleReady?.ok();
  }

  /** Unsubscribed or the client closed: iterators finish what they hold, then end; nothing else is delivered. */
  end(reason: SwitchboardError = new SwitchboardError('closed', `unsubscribed from '${this.filter}'`)): void {
    if (this.ended) return;
    this.ended = true;
    this.live = false;
    this.backlog = [];
    this.settleReady?.fail(reason);
    this.setState('unsubscribed');
    for (const s of this.streams) s.end();
    this.streams.clear();
  }

  // ---- delivery ----

  /** Someone takes this subscription's messages now: a `message` listener or an iterator. */
  private hasTaker(): boolean {
    return this.listenerCount('message') > 0 || this.streams.size > 0;
  }

  /** The backlog goes out on a microtask, so listeners added together (and a `for await`) all get it. */
  private queueFlush(): void {
    if (this.flushQueued || this.backlog.length === 0) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      if (this.ended || !this.hasTaker()) return;
      const batch = this.backlog;
      this.backlog = [];
      this.deliver(batch);
    });
  }

  private deliver(batch: { message: Message<T>; seen: boolean }[]): void {
    let behind: MessageStream<Message<T>> | undefined;
    for (let i = 0; i < batch.length; i++) {
      // A listener ended the subscription (nothing more goes out), or the last taker went (a once(), an off()):
      // what is left waits for the next one.
      if (this.ended) return;
      if (!this.hasTaker()) return void (this.backlog = [...batch.slice(i), ...this.backlog]);
      const m = batch[i]!.message;
      for (const s of this.streams) if (!s.push(m)) behind = s;
      if (this.listenerCount('message') > 0) this.handOut(m);
      this.emit('message', m);
      if (behind) return this.overflow(`an iterator fell more than ${this.bound} messages behind (bufferSize)`);
    }
  }

  /** `m` reached the app (a listener, or an iterator's `next()`). */
  private handOut(m: Message<T>): void {
    this.handed.accept(m.topic, m.seq, m.epoch);
  }

  private overflow(why: string): void {
    const err = new SwitchboardError('buffer_overflow', `subscription to '${this.filter}' failed: ${why}`);
    this.fail(err);
    this.host.failed(this as Subscription<unknown>, err);
  }

  private fail(err: SwitchboardError): void {
    if (this.ended) return;
    this.ended = true;
    this.live = false;
    this.backlog = [];
    this._error = err;
    this.settleReady?.fail(err);
    this.setState('failed');
    for (const s of this.streams) s.fail(err);
    this.streams.clear();
    this.emit('error', err);
  }

  private emitChange(c: PresenceChange): void {
    if (c.event === 'rename') this.emit('rename', { member: c.member, old: c.old });
    else this.emit(c.event, c.member);
  }

  private setState(state: SubscriptionState): void {
    if (this._state === state) return;
    this._state = state;
    this.emit('state', state);
  }
}

// MemoryEngine: the in-memory engine (src/engine/engine.ts) — registry, topic index, presence, history and fan-out of one
// process. No sockets and no timers: it talks to sessions only by queueing frames in their mailboxes. Readers call
// handle() per frame (the fast ingest path); the supervisor calls join/leave; deliveries are never xstate events.
import { localSessionId, type Engine, type EngineInspection, type JoinRequest, type LeaveCause, type PublishResult, type RequestFrame, type Session, type TopicView } from './engine.js';
import { ackFrame, errorFrame, PROTOCOL_VERSION, type FrameOf, type PresenceEvent } from '../protocol/frames.js';
import { ProtocolError, type FrameId } from '../protocol/errors.js';
import { encodeData, Outgoing, senderOf, type EncodedData } from '../protocol/outgoing.js';
import { isWildcard, topicJson } from '../protocol/topic.js';
import { TopicIndex } from './topic-index.js';
import { History } from './history.js';
import { RESUME_MAX_TOPICS, resumeAck, resumeTerms } from './resume.js';
import { Presence, tellWatchers } from './presence.js';
import { Registry } from './registry.js';
import { listTopics, LocalInspection } from './inspection.js';
import { Subscriptions } from './subscriptions.js';
import { BrokerStats } from './stats.js';
import { queueWhoPage, Roster, WHO_LIMIT_DEFAULT } from './roster.js';
import { PublishKeys } from './idempotency.js';
import type { MemoryEngineOptions } from './options.js';
import { closesWhenIdle, defaultNameBase, nameProblem, publishRefusal, renameLimit, sendRefusal, whoStart } from './rules.js';
import type { Grant } from '../auth/grant.js';

export type { MemoryEngineOptions };
export type { JoinRequest, LeaveCause, PublishResult };

export class MemoryEngine<Link extends Session = Session> implements Engine<Link> {
  // Its structures are its own (and its subclass's): others read them through `inspect`.
  protected readonly registry = new Registry<Link>();
  protected readonly index = new TopicIndex<Link>();
  protected readonly presence = new Presence<Link>();
  protected readonly history: History<Outgoing>;
  readonly stats = new BrokerStats();
  /** `who` pages, cached until the registry, subscriptions or (after at most a second) states change. */
  protected readonly roster = new Roster<Link>();
  readonly inspect: EngineInspection<Link>;
  /** The filters each session holds, in step with the index, the watchers and the roster. */
  protected readonly subscriptions: Subscriptions<Link>;
  private readonly publishKeys = new PublishKeys();

  constructor(readonly options: MemoryEngineOptions) {
    this.history = new History(
      { perTopic: options.historySize, maxTopics: options.maxTopics, topicBytes: options.historyTopicBytes, totalBytes: options.historyBytes, namesBytes: options.topicNamesBytes },
      (m) => m.bytes,
    );
    const { registry, index, presence, roster, history } = this;
    this.inspect = new LocalInspection<Link>({ registry, index, presence, history });
    this.subscriptions = new Subscriptions<Link>({ index, presence, roster }, options.maxSubscriptions);
  }

  get life(): string {
    return this.history.boot;
  }

  get sessionCount(): number {
    return this.registry.size;
  }

  sessions(): IterableIterator<Link> {
    return this.registry.values();
  }

  find(idOrName: string): Link | undefined {
    return this.registry.find(idOrName);
  }

  isNameFree(name: string): boolean {
    return this.registry.isNameFree(name);
  }

  /** One request of a session, straight from its reader. */
  handle(link: Link, frame: RequestFrame): void {
    switch (frame.op) {
      case 'sub':
        return this.sub(link, frame);
      case 'unsub':
        return this.unsub(link, frame);
      case 'pub':
        return this.pub(link, frame);
      case 'send':
        return this.send(link, frame);
      case 'who':
        return this.who(link, frame);
      case 'rename':
        return this.rename(link, frame);
    }
  }

  nextSessionId(): string {
    return localSessionId();
  }

  /** Nothing is on its way: every earlier request was answered and its deliveries queued already. */
  ping(link: Link, id: FrameId | undefined): void {
    link.send(id === undefined ? { op: 'pong' } : { op: 'pong', id });
  }

  publishAsync(topic: string, data: unknown, key?: string): Promise<PublishResult | ProtocolError> {
    return Promise.resolve(this.publish(topic, data, key));
  }

  health(): 'ok' | 'degraded' {
    return 'ok';
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}

  /** Removes every trace of `link` after a fault in leave(); nothing is announced. */
  forget(link: Link): void {
    this.registry.remove(link);
    this.subscriptions.detach(link);
    this.roster.clientChanged(link.subscriptions);
  }

  /** Known topics (with history) and filters someone holds, with subscribers and positions (GET /api/topics). */
  topics(limit: number): { total: number; topics: TopicView[] } {
    return listTopics({ registry: this.registry, index: this.index, history: this.history }, limit);
  }

  /** Registers `link`, sends `hello`, then applies the subscriptions asked for at connect. */
  join(link: Link, req: JoinRequest): void {
    // The name asked at connect is taken before hello when it is valid and free, so hello shows it.
    const asked = req.grant?.name ?? req.name;
    const nameProblem = asked === undefined ? null : this.nameProblem(link, asked);
    link.name = asked !== undefined && nameProblem === null ? asked : this.freeDefaultName(link);
    if (req.grant) {
      link.grant = req.grant;
      link.nameFixed = true;
    }
    this.registry.add(link);
    this.roster.clientChanged(link.subscriptions);
    this.stats.connectionsOpened++;
    this.greet(link);
    if (nameProblem) this.fail(link, nameProblem);
    this.subscribeAtConnect(link, req);
  }

  /** The `hello` every connection gets first. */
  protected greet(link: Link): void {
    link.send({
      op: 'hello',
      client: link.info(),
      heartbeatMs: this.options.heartbeatMs,
      idleMs: this.options.idleMs,
      idleClose: this.closesWhenIdle(link),
      server: { name: this.options.serverName, version: this.options.version, protocol: PROTOCOL_VERSION },
    });
  }

  /** The filters asked for at connect (path, `topics=`, the TCP room with presence); true when any was new. */
  protected subscribeAtConnect(link: Link, req: JoinRequest): boolean {
    const initial: [string, boolean][] = [
      ...(req.topics ?? []).map((t): [string, boolean] => [t, false]),
      ...(req.presenceTopics ?? []).map((t): [string, boolean] => [t, true]),
    ];
    let changed = false;
    for (const [filter, presence] of initial) {
      const added = this.subscriptions.add(link, filter, presence);
      if (added instanceof ProtocolError) this.fail(link, added);
      else if (added) {
        changed = true;
        this.announce('join', link, filter);
      }
    }
    return changed;
  }

  /** Unregisters `link` and tells the presence watchers of each of its filters. */
  leave(link: Link, cause: LeaveCause): void {
    if (!this.unregister(link)) return;
    for (const filter of link.subscriptions) this.announce(cause, link, filter);
    link.subscriptions.clear();
    link.presence.clear();
  }

  /** Takes a leaving `link` out of the registry, the index and the watchers; false when it was not registered. */
  protected unregister(link: Link): boolean {
    if (!this.registry.remove(link)) return false;
    this.roster.clientChanged(link.subscriptions);
    this.stats.connectionsClosed++;
    this.subscriptions.detach(link);
    return true;
  }

  /** Whether `link` is closed when idle, under the --idle-close policy. */
  closesWhenIdle(link: Link): boolean {
    return closesWhenIdle(this.options.idleClose, link.transport);
  }

  /** `link` went idle or became active again: the presence watchers of its filters hear it. */
  activity(link: Link, event: 'idle' | 'active'): void {
    if (!this.registry.has(link)) return;
    this.roster.clientChanged(link.subscriptions); // who shows each client's state
    for (const filter of link.subscriptions) this.announce(event, link, filter);
  }

  sub(link: Link, frame: FrameOf<'sub'>): void {
    const added = this.subscriptions.add(link, frame.topic, frame.presence === true, frame.id);
    if (added instanceof ProtocolError) return this.fail(link, added);
    if (frame.since === undefined) {
      this.ack(link, frame.id, { life: this.history.boot });
    } else {
      this.resume(link, frame);
    }
    if (added) this.announce('join', link, frame.topic);
  }

  /** Answers a `sub` with a position: the truthful verdict first, then every replayable message (docs/protocol.md). */
  private resume(link: Link, frame: FrameOf<'sub'>): void {
    const life = this.history.boot;
    const { seen, anchored, budget } = resumeTerms(frame, life, link.mailbox, this.replayLimits);
    const result = this.history.resume(frame.topic, isWildcard(frame.topic), seen, { maxTopics: RESUME_MAX_TOPICS, maxMessages: budget.messages, maxBytes: budget.bytes }, anchored);
    link.send(ackFrame(frame.id, resumeAck(frame, result.positions, result.missed, result.truncated, life)));
    for (const m of result.messages) link.mailbox.push(m);
  }

  /** What one resume may replay at most (--replay-max-messages, --replay-max-bytes). */
  protected get replayLimits(): { maxMessages: number; maxBytes: number } {
    return { maxMessages: this.options.replayMaxMessages, maxBytes: this.options.replayMaxBytes };
  }

  /** Acknowledges a request; a notification (no id) gets nothing (docs/protocol.md, Requests and notifications). */
  protected ack(link: Link, id: FrameId | undefined, fields?: Record<string, unknown>): void {
    if (id !== undefined) link.send(ackFrame(id, fields));
  }

  /** Idempotent, like MQTT: unsubscribing from a filter one does not hold is acknowledged too. */
  unsub(link: Link, frame: FrameOf<'unsub'>): void {
    if (this.subscriptions.remove(link, frame.topic)) this.announce('leave', link, frame.topic);
    this.ack(link, frame.id);
  }

  /** A fresh token for `link` (docs/protocol.md, Token expiry and refresh): what it no longer allows is dropped. */
  regrant(link: Link, grant: Grant, id: FrameId | undefined): void {
    const dropped = this.takeGrant(link, grant);
    for (const topic of dropped) this.unsub(link, { op: 'unsub', topic });
    this.grantTaken(link, grant, dropped, id);
  }

  /** Gives `link` its new grant; returns the filters it holds that the grant does not allow (to drop). */
  protected takeGrant(link: Link, grant: Grant): string[] {
    link.grant = grant;
    return [...link.subscriptions].filter((filter) => !grant.maySubscribe(filter));
  }

  /** After a regrant: one `forbidden` per dropped filter, then the ack with the new token's `exp` (null: none). */
  protected grantTaken(link: Link, grant: Grant, dropped: string[], id: FrameId | undefined): void {
    for (const filter of dropped) this.fail(link, new ProtocolError('forbidden', `the refreshed token does not allow subscribing to '${filter.slice(0, 64)}'`));
    this.ack(link, id, { exp: grant.exp ?? null });
  }

  /** Publishes from a client frame: the message goes to every matching subscriber once, then the sender gets its ack. */
  pub(link: Link, frame: FrameOf<'pub'>): void {
    this.pubAnswer(link, frame, publishRefusal(link, frame) ?? this.publishFrom(frame.topic, frame.data, link, frame.echo !== false, frame.id, frame.key, frame.qos));
  }

  /**
   * The answer to a `pub`, on every engine. `delivered` tells how many subscribers a topic has: only a client that
   * may subscribe to it (or an admin) learns that; others get the ack without it.
   */
  protected pubAnswer(link: Link, frame: FrameOf<'pub'>, result: PublishResult | ProtocolError): void {
    if (result instanceof ProtocolError) return this.fail(link, result);
    if (frame.id === undefined) return; // a notification: no ack to build
    const { grant } = link;
    const told = grant && !grant.admin && !grant.maySubscribe(frame.topic) ? { seq: result.seq, epoch: result.epoch } : { seq: result.seq, epoch: result.epoch, delivered: result.delivered };
    this.ack(link, frame.id, result.duplicate ? { ...told, duplicate: true } : told);
  }

  /** A server-side publish (no sender). */
  publish(topic: string, data: unknown, key?: string): PublishResult | ProtocolError {
    return this.publishFrom(topic, data, null, true, undefined, key);
  }

  /**
   * Encodes the message once and queues the same bytes in every matching mailbox. Data that cannot be encoded is
   * refused here (bad_frame): nothing is numbered, stored or delivered. With `key`, a retry within the key's
   * window is answered with the first publish's position and delivers nothing.
   */
  protected publishFrom(topic: string, data: unknown, from: Link | null, echo: boolean, id: FrameId | undefined, key: string | undefined, qos?: 0 | 1 | 2): PublishResult | ProtocolError {
    if (key !== undefined) {
      const first = this.publishKeys.get(topic, key);
      if (first) return first;
    }
    const encoded = encodeData(data, id);
    if (encoded instanceof ProtocolError) return encoded;
    const ts = Date.now();
    const sender = from ? senderOf(from) : undefined;
    const quoted = topicJson(topic);
    const { seq, epoch, message } = this.history.append(topic, (seq, epoch) => Outgoing.message(topic, quoted, seq, epoch, sender, ts, encoded));
    if (qos !== undefined && qos < 2) message.maxQos = qos;
    const delivered = this.fanOut(topic, from !== null && !echo ? from.id : '', (s) => s.mailbox.push(message));
    this.stats.published++;
    if (key !== undefined) this.publishKeys.set(topic, key, { seq, epoch });
    return { seq, epoch, delivered };
  }

  /**
   * Hands a message of `topic` to every matching local subscriber once (but the one whose id is `skip`: a sender
   * that asked for no echo) through `push`; returns how many took it, counted as delivered.
   */
  protected fanOut(topic: string, skip: string, push: (subscriber: Link) => boolean): number {
    const subscribers = this.index.match(topic);
    let delivered = 0;
    for (let i = 0; i < subscribers.length; i++) {
      const s = subscribers[i]!;
      if (skip !== '' && s.id === skip) continue;
      if (push(s)) delivered++;
    }
    this.stats.delivered += delivered;
    return delivered;
  }

  /**
   * A direct goes to one recipient, within the token's `acl.send` and the recipient's budget for directs (a quarter
   * of its mailbox): over it the sender gets rate_limited and nothing is queued; the recipient is never closed for it.
   */
  send(link: Link, frame: FrameOf<'send'>): void {
    const target = this.registry.find(frame.to);
    const refused = sendRefusal(link, frame, target);
    if (refused) return this.fail(link, refused);
    const encoded = encodeData(frame.data, frame.id);
    if (encoded instanceof ProtocolError) return this.fail(link, encoded);
    if (this.queueDirect(link, frame, target!, encoded)) this.ack(link, frame.id);
  }

  /** Queues a direct for a local recipient within its budget for directs; over it the sender gets rate_limited (false). */
  protected queueDirect(link: Link, frame: FrameOf<'send'>, target: Link, encoded: EncodedData): boolean {
    const out = new Outgoing({ op: 'direct', from: { id: link.id, name: link.name }, data: frame.data }, undefined, encoded);
    if (!target.mailbox.acceptsDirect(out.bytes)) {
      this.stats.directsRefused++;
      this.fail(link, new ProtocolError('rate_limited', `too many directs queued for '${frame.to}'; slow down`, frame.id));
      return false;
    }
    target.mailbox.push(out);
    return true;
  }

  /**
   * One page of clients (connection order), encoded once per roster version and shared; the reply is charged to
   * the asker's inbound rate by size, and its own mailbox bound makes a never-reading asker its own slow consumer.
   */
  who(link: Link, frame: FrameOf<'who'>): void {
    const after = whoStart(link, frame);
    if (after instanceof ProtocolError) return this.fail(link, after);
    const { topic } = frame;
    const page = this.roster.page(topic ?? '', () => this.clientsOf(topic), after, frame.limit ?? WHO_LIMIT_DEFAULT, link.grant?.admin === true);
    queueWhoPage(link, frame.id, page, this.roster.lastBuilt);
  }

  /** Every client, or those a publish to concrete `topic` would reach, or those holding wildcard filter `topic` exactly. */
  protected clientsOf(topic?: string): Link[] {
    if (topic === undefined) return [...this.registry.values()];
    return isWildcard(topic) ? [...this.index.subscribersOf(topic)] : [...this.index.match(topic)];
  }

  rename(link: Link, frame: FrameOf<'rename'>): void {
    const problem = this.renameRefusal(link, frame);
    if (problem) return this.fail(link, problem);
    this.renamed(link, frame.name, frame.id);
  }

  /** Gives `link` its new name (claimed already), acknowledges it, and tells the watchers of its filters. */
  protected renamed(link: Link, name: string, id: FrameId | undefined): void {
    const old = link.name;
    this.registry.rename(link, name);
    this.roster.clientChanged(link.subscriptions);
    this.ack(link, id, { name: link.name });
    if (old === link.name) return;
    for (const filter of link.subscriptions) this.announce('rename', link, filter, old);
  }

  /** Why a `rename` is refused, on every engine: over the client's own rename rate (--rename-rate), or the name. */
  protected renameRefusal(link: Link, frame: FrameOf<'rename'>): ProtocolError | null {
    return renameLimit(link, this.options.renameRate ?? 0, this.options.stalls, frame.id) ?? this.nameProblem(link, frame.name, frame.id);
  }

  /** Why `link` may not take `name` here (another local client holds it). */
  protected nameProblem(link: Link, name: string, id?: FrameId): ProtocolError | null {
    return nameProblem(link, name, !this.registry.isNameFree(name) && this.registry.find(name) !== link, id);
  }

  /** Replies to a frame the supervisor could not handle; counted by code. */
  fail(link: Link, err: ProtocolError): void {
    this.stats.countError(err.code);
    link.send(errorFrame(err));
  }

  /** True when the chat room is too big to announce every login and logout. */
  roomIsQuiet(): boolean {
    const { room, roomAnnounceMax } = this.options;
    return room !== undefined && roomAnnounceMax !== undefined && this.presence.watchers(room).size > roomAnnounceMax;
  }

  /**
   * Sends a presence event about `subject` to the watchers of `filter` (the subject included, while it watches).
   * Coalesced per watcher: when the watcher's last queued, unwritten frame is an event about the same subject and
   * filter, the two become one (see coalesce). Joins and leaves in a room over --room-announce-max are not announced.
   */
  protected announce(event: PresenceEvent, subject: Link, filter: string, old?: string): void {
    const watchers = this.presence.watchers(filter);
    if (watchers.size === 0) return;
    if (event !== 'rename' && filter === this.options.room && this.roomIsQuiet()) return;
    tellWatchers(watchers, event, subject, filter, old);
  }

  /** A client's default name (rules.ts), `-2`, `-3`, … after it while another local client holds it. */
  protected defaultNameBase(link: Link): string {
    return defaultNameBase(link, this.options.tcpNamedByAddress !== false);
  }

  protected freeDefaultName(link: Link): string {
    const base = this.defaultNameBase(link);
    let name = base;
    for (let k = 2; !this.registry.isNameFree(name); k++) name = `${base}-${k}`;
    return name;
  }
}

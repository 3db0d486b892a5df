// ProtocolCore: what every request means, written once for every deployment (docs/protocol.md): sessions joining and
// leaving, sub (with resume verdicts), unsub, pub, send, who, rename, regrant, ping, presence events, the fan-out to
// this process's subscribers (Locals). It runs over the narrow parts of seam.ts: a Broker (messages, history,
// interest, the node channel), a PresenceStore (records, names, who, events), Ids and Turns (each session's
// requests in order). The in-memory parts answer at once, so on one process every request is answered within the
// reader's call; the Redis parts answer later and the same code waits for them (`after`). Per-message work stays
// out of xstate: readers call handle(), the supervisor join/leave.
import type { Engine, EngineInspection, JoinRequest, LeaveCause, Occupancy, OccupancyListener, PublishResult, RequestFrame, Session, TopicView } from './engine.js';
import { ackFrame, PROTOCOL_VERSION, type FrameOf, type PresenceEvent } from '../protocol/frames.js';
import { ProtocolError, type FrameId } from '../protocol/errors.js';
import { encodeData, Outgoing } from '../protocol/outgoing.js';
import { filterError } from '../protocol/topic.js';
import { resumeTerms } from './resume.js';
import { listTopics, LocalInspection } from './inspection.js';
import type { BrokerStats } from './stats.js';
import { queueWhoPage, WHO_LIMIT_DEFAULT } from './roster.js';
import { CACHE_NODES_PER_TOKEN, PRESENCE_WATCHERS_PER_TOKEN, type MemoryEngineOptions } from './options.js';
import { closesWhenIdle, defaultNameBase, nameProblem, publishRefusal, publisherOf, renameLimit, sendRefusal, whoStart } from './rules.js';
import type { Grant } from '../auth/grant.js';
import type { Locals } from './local.js';
import { after, all, each, lastly, type Broker, type Maybe, type Parts, type PresenceStore, type Recipient, type Turns } from './seam.js';

export class ProtocolCore<S extends Session = Session> implements Engine<S> {
  readonly stats: BrokerStats;
  readonly inspect: EngineInspection<S>;
  protected readonly broker: Broker<S>;
  protected readonly store: PresenceStore<S>;
  private readonly turns: Turns<S>;
  /** The filters a departed session's leave will announce, until its turn comes (a sub undone meanwhile drops its own). */
  private readonly leaving = new WeakMap<S, Set<string>>();

  constructor(
    readonly options: MemoryEngineOptions,
    protected readonly local: Locals<S>,
    private readonly parts: Parts<S>,
  ) {
    this.broker = parts.broker;
    this.store = parts.presence;
    this.turns = parts.turns;
    this.stats = local.stats;
    this.inspect = new LocalInspection<S>({ registry: local.registry, index: local.index, presence: local.watchers, history: parts.broker.history });
    // A filter's first local holder makes this process hear it, its last one (maybe after a linger) stop.
    local.index.onFilter = (filter, held) => this.broker.interest(filter, held);
  }

  // ---- queries --------------------------------------------------------------------------------------------------

  get life(): string {
    return this.broker.life;
  }

  get sessionCount(): number {
    return this.local.registry.size;
  }

  sessions(): IterableIterator<S> {
    return this.local.registry.values();
  }

  find(idOrName: string): S | undefined {
    return this.local.registry.find(idOrName);
  }

  isNameFree(name: string): boolean {
    return this.local.registry.isNameFree(name);
  }

  roomIsQuiet(): boolean {
    return this.local.roomIsQuiet();
  }

  /** Known topics (with history) and filters someone holds, with subscribers and positions (GET /api/topics). */
  topics(limit: number): { total: number; topics: TopicView[] } {
    return listTopics({ registry: this.local.registry, index: this.local.index, history: this.broker.history }, limit);
  }

  /** Whether `link` is closed when idle, under the --idle-close policy. */
  closesWhenIdle(link: S): boolean {
    return closesWhenIdle(this.options.idleClose, link.transport);
  }

  // ---- the deployment -------------------------------------------------------------------------------------------

  occupancy(listener: OccupancyListener): Occupancy {
    return this.parts.deployment.occupancy(listener);
  }

  nextSessionId(): string {
    return this.parts.ids.next();
  }

  health(): 'ok' | 'degraded' {
    return this.parts.deployment.health();
  }

  start(): Promise<void> {
    return this.parts.deployment.start();
  }

  close(): Promise<void> {
    return this.parts.deployment.close();
  }

  // ---- sessions -------------------------------------------------------------------------------------------------

  /** Registers `link` (under its id until it has a name), then in its turn: its name, hello, the filters asked at connect. */
  join(link: S, req: JoinRequest): void {
    if (req.grant) {
      link.grant = req.grant;
      link.nameFixed = true;
    }
    this.local.registry.add(link);
    this.local.roster.clientChanged(link.subscriptions);
    this.stats.connectionsOpened++;
    this.turns.step(link, () =>
      after(this.store.claimAtJoin(link, req.grant?.name ?? req.name, defaultNameBase(link, this.options.tcpNamedByAddress !== false)), ({ name, problem }) => {
        // Gone meanwhile: its leave (behind this step) drops its old name; the one claimed here is freed now, not kept.
        if (!this.local.registry.has(link)) return this.store.drop(link.id, name);
        this.local.registry.rename(link, name);
        return after(this.store.record(link), () => this.admit(link, req, problem));
      }),
    );
  }

  /** Hello, then the filters asked for at connect: heard before hello, so a message published after it reaches the client. */
  private admit(link: S, req: JoinRequest, problem: ProtocolError | null): Maybe<void> {
    // The path's and `topics=` filters, and the TCP room's with presence.
    const asked = [...(req.topics ?? []).map((t) => [t, false] as const), ...(req.presenceTopics ?? []).map((t) => [t, true] as const)];
    const heard = asked.map(([f]) => f).filter((f) => filterError(f) === null);
    for (const f of heard) this.broker.interest(f, true);
    return lastly(
      () =>
        after(all(heard.map((f) => this.broker.ready(f))), () => {
          if (!this.local.registry.has(link)) return;
          this.greet(link);
          if (problem) this.fail(link, problem);
          const joined: string[] = [];
          for (const [filter, presence] of asked) {
            const added = this.local.subscriptions.add(link, filter, presence);
            if (added instanceof ProtocolError) this.fail(link, added);
            else if (added) joined.push(filter);
          }
          // The joins after the record, as a sub's: a watcher that hears one finds the client in `who` on any node.
          // (Gone meanwhile: its leave, behind this step, announces these filters too; the joins go first.)
          if (joined.length > 0)
            return after(this.store.record(link), () => {
              for (const filter of joined) this.announce('join', link, filter);
            });
        }),
      () => {
        for (const f of heard) this.broker.interest(f, false);
      },
    );
  }

  /** The `hello` every connection gets first. */
  private greet(link: S): void {
    link.send({
      op: 'hello',
      client: link.info(),
      heartbeatMs: this.options.heartbeatMs,
      idleMs: this.options.idleMs,
      idleClose: this.closesWhenIdle(link),
      server: { name: this.options.serverName, version: this.options.version, protocol: PROTOCOL_VERSION },
    });
  }

  /** Unregisters `link`; in its turn the presence watchers of each of its filters hear it, and its record goes. */
  leave(link: S, cause: LeaveCause): void {
    if (!this.local.registry.remove(link)) return;
    this.local.roster.clientChanged(link.subscriptions);
    this.stats.connectionsClosed++;
    this.local.subscriptions.detach(link);
    const filters = new Set(link.subscriptions);
    this.leaving.set(link, filters);
    link.subscriptions.clear();
    link.presence.clear();
    this.broker.forget(link);
    this.turns.step(link, () => {
      this.leaving.delete(link);
      for (const filter of filters) this.announce(cause, link, filter);
      return this.store.drop(link.id, link.name);
    });
  }

  /** Removes every trace of `link` after a fault in leave(); nothing is announced. */
  forget(link: S): void {
    this.local.registry.remove(link);
    this.local.subscriptions.detach(link);
    this.local.roster.clientChanged(link.subscriptions);
    link.subscriptions.clear();
    this.broker.forget(link);
    this.turns.step(link, () => this.store.drop(link.id, link.name));
  }

  /** `link` went idle or became active again: the presence watchers of its filters hear it (who shows its state). */
  activity(link: S, event: 'idle' | 'active'): void {
    if (!this.local.registry.has(link)) return;
    this.local.roster.clientChanged(link.subscriptions);
    this.turns.step(link, () => {
      for (const filter of link.subscriptions) this.announce(event, link, filter);
      return this.store.record(link);
    });
  }

  /** Answers a `ping` after every earlier request of `link` and every delivery already on its way to it. */
  ping(link: S, id: FrameId | undefined): void {
    this.turns.step(link, () => after(this.broker.barrier(), () => void link.send(id === undefined ? { op: 'pong' } : { op: 'pong', id })), id);
  }

  /** A fresh token, in the session's turn (docs/protocol.md, Token expiry and refresh): what it no longer allows is dropped. */
  regrant(link: S, grant: Grant, id: FrameId | undefined): void {
    this.turns.step(
      link,
      () => {
        link.grant = grant;
        const dropped = [...link.subscriptions].filter((filter) => !grant.maySubscribe(filter));
        return after(
          each(dropped, (topic) => this.unsub(link, { op: 'unsub', topic })),
          () => {
            for (const filter of dropped) this.fail(link, new ProtocolError('forbidden', `the refreshed token does not allow subscribing to '${filter.slice(0, 64)}'`, undefined, filter));
            this.ack(link, id, { exp: grant.exp ?? null });
          },
        );
      },
      id,
    );
  }

  // ---- requests -------------------------------------------------------------------------------------------------

  /** One request of a session, straight from its reader, in the session's turn. */
  handle(link: S, frame: RequestFrame): void {
    switch (frame.op) {
      case 'pub':
        return this.turns.early(link, this.pubStart, this.pubAnswer, frame, frame.id);
      case 'sub':
        return this.turns.request(link, this.subRun, frame, frame.id);
      case 'unsub':
        return this.turns.request(link, this.unsubRun, frame, frame.id);
      case 'send':
        return this.turns.request(link, this.sendRun, frame, frame.id);
      case 'who':
        return this.turns.request(link, this.whoRun, frame, frame.id);
      case 'rename':
        return this.turns.request(link, this.renameRun, frame, frame.id);
    }
  }

  // Bound once (no closure per request), and through `this` so a subclass's override is the one that runs.
  private readonly subRun = (link: S, frame: FrameOf<'sub'>) => this.sub(link, frame);
  private readonly unsubRun = (link: S, frame: FrameOf<'unsub'>) => this.unsub(link, frame);
  private readonly sendRun = (link: S, frame: FrameOf<'send'>) => this.send(link, frame);
  private readonly whoRun = (link: S, frame: FrameOf<'who'>) => this.who(link, frame);
  private readonly renameRun = (link: S, frame: FrameOf<'rename'>) => this.rename(link, frame);

  sub(link: S, frame: FrameOf<'sub'>): Maybe<void> {
    // A resuming client's live messages wait from the moment it is subscribed until its replay is queued.
    const resuming = frame.since !== undefined;
    if (resuming) this.broker.hold(link);
    return lastly(
      () => {
        // Gone before its turn came (a cluster node serves one session's requests in order, the leave meanwhile): a
        // subscription now would be held by nobody, for good, its join never followed by a leave.
        if (!this.local.registry.has(link)) return;
        const added = this.local.subscriptions.add(link, frame.topic, frame.presence === true, frame.id);
        if (added instanceof ProtocolError) return this.fail(link, added);
        // Before the ack (and before a resume reads the history): what is published from now on reaches this process;
        // and `who` anywhere shows the subscription once the client has its ack.
        return after(this.broker.ready(frame.topic), () =>
          after(added ? this.store.record(link) : undefined, () =>
            after(resuming ? this.resume(link, frame) : this.ack(link, frame.id, { life: this.broker.life }), (answered) => {
              if (answered === false) return added ? this.undoSub(link, frame.topic) : undefined;
              // Gone meanwhile: its leave, queued behind this step, announces this filter too, so the join goes first
              // (without it a watcher would hear the leave of a client it never heard join).
              if (added) this.announceOwn('join', link, frame.topic);
            }),
          ),
        );
      },
      () => {
        if (resuming) this.broker.release(link);
      },
    );
  }

  /** A subscription whose resume could not be answered is not kept. */
  private undoSub(link: S, filter: string): Maybe<void> {
    // Gone meanwhile: its leave (behind this step) must not announce a filter whose join never was.
    this.leaving.get(link)?.delete(filter);
    this.local.subscriptions.remove(link, filter);
    return this.store.record(link);
  }

  /** Answers a `sub` with a position: the truthful verdict first, then every replayable message; false when it could not. */
  private resume(link: S, frame: FrameOf<'sub'>): Maybe<boolean> {
    const terms = resumeTerms(frame, this.broker.life, link.mailbox, { maxMessages: this.options.replayMaxMessages, maxBytes: this.options.replayMaxBytes });
    return after(this.broker.resume(frame, terms), (answer) => {
      if (answer instanceof ProtocolError) {
        this.fail(link, answer);
        return false;
      }
      // What it looked through to find a wildcard's topics is its client's cost (one matching nothing may look at all).
      link.rate?.charge(Math.floor((answer.work ?? 0) / CACHE_NODES_PER_TOKEN));
      // Always answered: a `sub` with `since` asked for its verdict, with or without an id.
      link.send(ackFrame(frame.id, answer.ack));
      for (const m of answer.messages) link.mailbox.push(m);
      this.broker.replayedTo(link, answer.positions);
      return true;
    });
  }

  /** Idempotent, like MQTT: unsubscribing from a filter one does not hold is acknowledged too. */
  unsub(link: S, frame: FrameOf<'unsub'>): Maybe<void> {
    if (!this.local.subscriptions.remove(link, frame.topic)) return this.ack(link, frame.id);
    return after(this.store.record(link), () => {
      this.announceOwn('leave', link, frame.topic);
      this.ack(link, frame.id);
    });
  }

  private readonly pubStart = (link: S, frame: FrameOf<'pub'>): Maybe<PublishResult | ProtocolError> =>
    publishRefusal(link, frame) ?? this.broker.publish(frame.topic, frame.data, publisherOf(link, frame.topic), frame.echo !== false, frame.id, frame.key, frame.qos, frame.retain);

  /**
   * The answer to a `pub`. `delivered` tells how many subscribers a topic has: only a client that may subscribe to it
   * (or an admin) learns that; others get the ack without it.
   */
  private readonly pubAnswer = (link: S, frame: FrameOf<'pub'>, result: PublishResult | ProtocolError): void => {
    if (result instanceof ProtocolError) return this.fail(link, result);
    if (frame.id === undefined) return; // a notification: no ack to build
    const { grant } = link;
    const told = grant && !grant.admin && !grant.maySubscribe(frame.topic) ? { seq: result.seq, epoch: result.epoch } : { seq: result.seq, epoch: result.epoch, delivered: result.delivered };
    this.ack(link, frame.id, result.duplicate ? { ...told, duplicate: true } : told);
  };

  /**
   * A server-side publish (HTTP API, MQTT wills): no sender; answered at once in memory, after the store on a cluster.
   * `qos`: the highest QoS MQTT subscribers get it at (a will's own QoS; default 2).
   */
  publish(topic: string, data: unknown, key?: string, qos?: 0 | 1 | 2): Maybe<PublishResult | ProtocolError> {
    return this.broker.publish(topic, data, null, true, undefined, key, qos);
  }

  async publishAsync(topic: string, data: unknown, key?: string, qos?: 0 | 1 | 2): Promise<PublishResult | ProtocolError> {
    return this.publish(topic, data, key, qos);
  }

  /**
   * A direct goes to one recipient, within the token's `acl.send` and the recipient's budget for directs (a quarter
   * of its mailbox): over it the sender gets rate_limited and nothing is queued; the recipient is never closed for it.
   */
  send(link: S, frame: FrameOf<'send'>): Maybe<void> {
    const local = this.local.registry.find(frame.to);
    if (local) return this.sendTo(link, frame, { id: local.id, name: local.name, node: '' }, local);
    return after(this.store.find(frame.to, frame.id), (target) => (target instanceof ProtocolError ? this.fail(link, target) : this.sendTo(link, frame, target, undefined)));
  }

  private sendTo(link: S, frame: FrameOf<'send'>, target: Recipient | undefined, local: S | undefined): Maybe<void> {
    const refused = sendRefusal(link, frame, target);
    if (refused) return this.fail(link, refused);
    const encoded = encodeData(frame.data, frame.id);
    if (encoded instanceof ProtocolError) return this.fail(link, encoded);
    if (local) {
      const out = new Outgoing({ op: 'direct', from: { id: link.id, name: link.name }, data: frame.data }, undefined, encoded);
      const queued = this.local.direct(local, out);
      if (queued === 'queued') return this.ack(link, frame.id);
      if (queued === 'gone') return this.fail(link, new ProtocolError('not_found', `no client '${frame.to}'`, frame.id));
      return this.fail(link, new ProtocolError('rate_limited', `too many directs queued for '${frame.to}'; slow down`, frame.id));
    }
    return after(this.broker.direct(target!.node, target!.id, { id: link.id, name: link.name }, encoded.json), (received) =>
      received ? this.ack(link, frame.id) : this.fail(link, new ProtocolError('not_found', `no client '${frame.to}'`, frame.id)),
    );
  }

  /**
   * One page of clients (connection order); the reply is charged to the asker's inbound rate by size and by the
   * clients listed to build it, and its own mailbox bound makes a never-reading asker its own slow consumer.
   */
  who(link: S, frame: FrameOf<'who'>): Maybe<void> {
    const start = whoStart(link, frame);
    if (start instanceof ProtocolError) return this.fail(link, start);
    const answer = this.store.who(frame.topic, start, frame.limit ?? WHO_LIMIT_DEFAULT, link.grant?.admin === true, frame.id);
    return after(answer, (r) => (r instanceof ProtocolError ? this.fail(link, r) : queueWhoPage(link, frame.id, r.page, r.listed)));
  }

  rename(link: S, frame: FrameOf<'rename'>): Maybe<void> {
    const taken = !this.local.registry.isNameFreeFor(frame.name, link);
    const problem = renameLimit(link, this.options.renameRate ?? 0, this.options.stalls, frame.id) ?? nameProblem(link, frame.name, taken, frame.id);
    if (problem) return this.fail(link, problem);
    const old = link.name;
    if (old === frame.name) return this.ack(link, frame.id, { name: old });
    return after(this.store.claimName(link, frame.name, old, frame.id), (claimed) => {
      if (claimed instanceof ProtocolError) return this.fail(link, claimed);
      if (!claimed) return this.fail(link, new ProtocolError('name_taken', `name '${frame.name}' is taken`, frame.id));
      // Gone meanwhile: its leave dropped its old name; the one claimed here is freed now, not kept by nobody (a
      // ghost that took directs on this node and kept the name from everyone).
      if (!this.local.registry.has(link)) return this.store.drop(link.id, frame.name);
      this.local.registry.rename(link, frame.name);
      this.local.roster.clientChanged(link.subscriptions);
      this.ack(link, frame.id, { name: link.name });
      for (const filter of link.subscriptions) this.announce('rename', link, filter, old);
    });
  }

  // ---- answers --------------------------------------------------------------------------------------------------

  /** Replies to a frame that could not be handled; counted by code. */
  fail(link: S, err: ProtocolError): void {
    this.local.fail(link, err);
  }

  /** Acknowledges a request; a notification (no id) gets nothing (docs/protocol.md, Requests and notifications). */
  private ack(link: S, id: FrameId | undefined, fields?: Record<string, unknown>): void {
    if (id !== undefined) link.send(ackFrame(id, fields));
  }

  /** A join or leave of `subject`'s own sub or unsub: announced, and charged to it by this process's watchers told. */
  private announceOwn(event: 'join' | 'leave', subject: S, filter: string): void {
    this.announce(event, subject, filter);
    subject.rate?.charge(Math.floor(this.local.audience(event, filter) / PRESENCE_WATCHERS_PER_TOKEN));
  }

  /** A presence event about local client `subject` on `filter`: the store tells every process's watchers. */
  private announce(event: PresenceEvent, subject: S, filter: string, old?: string): void {
    this.store.announce(event, subject, filter, old);
  }
}

// RedisEngine: the cluster engine. Many broker processes on one Redis behave as one broker: one total order and
// gapless seq per topic, resumes from the topic's stream on any node, presence / names / who / directs across
// nodes, dead nodes reaped by a survivor. What a request means is the in-memory engine's (inherited: checks, acks,
// unsubscribe, the fan-out loop, presence coalescing; rules.ts, resume.ts); this class replaces what must ask Redis
// and composes one unit per job: RedisNode (membership), RequestOrder (each session's requests in arrival order),
// StreamPublisher, Cursors + LiveDelivery (the bus, in order, to local subscribers), stream resume, ClientDirectory,
// PresenceRelay, NodeBus, Barrier, Interest (docs/cluster.md, The engine's parts).
import { Cluster, type Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Grant } from '../../auth/grant.js';
import { MemoryEngine, type MemoryEngineOptions } from '../memory.js';
import type { JoinRequest, LeaveCause, PublishResult, RequestFrame, Session } from '../engine.js';
import { ackFrame, type FrameOf, type PresenceEvent } from '../../protocol/frames.js';
import { ProtocolError, type FrameId } from '../../protocol/errors.js';
import { encodeData, type Outgoing } from '../../protocol/outgoing.js';
import { filterError, filterMatches, isWildcard } from '../../protocol/topic.js';
import { queueWhoPage, Roster, WHO_LIMIT_DEFAULT } from '../roster.js';
import { resumeTerms } from '../resume.js';
import { publishRefusal, sendRefusal, whoStart } from '../rules.js';
import { CHANNELS, KEYS, PARTITIONS, partitionTag } from './keys.js';
import * as LUA from './scripts.js';
import { CLASSIC, Interest, SHARDED } from './interest.js';
import { keySlot } from './outcome.js';
import { Barrier } from './barrier.js';
import { Cursors } from './cursors.js';
import { RedisNode, type RedisNodeOptions } from './node.js';
import { ClientDirectory, type ClientRecord } from './directory.js';
import { StreamPublisher } from './publisher.js';
import { LiveDelivery } from './live-delivery.js';
import { NodeBus } from './bus.js';
import { OwnDeliveries } from './own-deliveries.js';
import { PresenceRelay, RemoteClient, type PresenceSubject } from './presence-relay.js';
import { RequestOrder } from './request-order.js';
import { resumeFromStreams } from './stream-resume.js';
import { refusal, unavailable } from './refusals.js';
import type { Occupancy, OccupancyListener } from '../engine.js';
import { ClusterOccupancy } from './occupancy.js';

export interface RedisEngineOptions extends MemoryEngineOptions, RedisNodeOptions {
  /** Requests this node may have waiting on Redis at once; beyond it: `unavailable` (bounded memory while Redis is slow). */
  maxInflight: number;
  /** How long the node keeps listening to a topic's channel after its last local subscriber left (interest.ts). */
  interestLingerMs?: number;
}

const OWN_DELIVERY_WAIT_MS = 2000;
const BARRIER_WAIT_MS = 1000;

export class RedisEngine<S extends Session = Session> extends MemoryEngine<S> {
  /** This process as a cluster member: connections, life, heartbeat, reaping (node.ts). */
  readonly redis: RedisNode;
  /** This process's id in the cluster (heartbeat key, node channel, epochs it creates). */
  readonly node: string;
  private readonly cmd: Redis | Cluster;
  private readonly log: Logger;
  /** Each session's requests in arrival order, at most maxInflight waiting on Redis. */
  private readonly order: RequestOrder<S>;
  /** This node's clients as every node sees them: records and names in Redis. */
  private readonly directory: ClientDirectory<S>;
  private readonly publisher: StreamPublisher;
  /** What the bus brings, per topic in seq order (gaps filled from the streams). */
  private readonly cursors: Cursors;
  /** Delivered counts of this node's own publishes, met on the bus before or after the script's reply. */
  private readonly own = new OwnDeliveries(OWN_DELIVERY_WAIT_MS);
  /** Live messages to this node's subscribers (held while one resumes, duplicates of a replay skipped). */
  private readonly live: LiveDelivery<S>;
  /** Presence about this node's clients, onto the bus (held while Redis is unreachable). */
  private readonly presenceRelay: PresenceRelay;
  /** Presence, directs and barrier tokens over Redis PUB/SUB, and what the subscriber hears. */
  private readonly bus: NodeBus;
  private readonly barrier: Barrier;
  /** The channels this node listens on for messages (interest routing, src/engine/redis/interest.ts). */
  readonly interest: Interest;

  constructor(readonly cluster: RedisEngineOptions) {
    super(cluster);
    this.redis = new RedisNode(cluster);
    this.node = this.redis.id;
    this.cmd = this.redis.cmd;
    this.log = this.redis.log;
    this.directory = new ClientDirectory<S>(this.redis, this.registry, this.log);
    this.live = new LiveDelivery<S>((topic, skip, push) => this.fanOut(topic, skip, push), this.own, this.node);
    this.publisher = new StreamPublisher(this.redis, {
      historySize: cluster.historySize,
      historyTopicBytes: cluster.historyTopicBytes,
      hears: (topic) => this.interest.receives(topic),
      channels: this.redis.shards ? SHARDED : CLASSIC,
      own: this.own,
      stats: this.stats,
    });
    this.order = new RequestOrder<S>({ maxInflight: cluster.maxInflight, fail: (s, err) => this.fail(s, err), refusal, log: this.log });
    this.cursors = new Cursors({
      deliver: (m) => this.live.deliver(m),
      read: (topic, from, count) => this.readStream(topic, from, count),
      closed: () => this.redis.closed,
      log: this.log,
    });
    this.bus = new NodeBus(
      this.redis,
      {
        message: (m) => this.cursors.receive(m),
        presence: (p) => super.announce(p.e, new RemoteClient(p.c) as unknown as S, p.f, p.o),
        direct: (to, from, out) => this.directArrived(to, from, out),
        barrier: (token) => this.barrier.arrived(token),
      },
      this.stats,
      this.log,
    );
    this.presenceRelay = new PresenceRelay({
      up: () => this.redis.up,
      publish: (payload) => this.bus.presence(payload),
      publishAll: (payloads) => this.bus.presenceAll(payloads),
      log: this.log,
    });
    this.barrier = new Barrier({
      via: () => (this.cmd instanceof Cluster ? [...this.cmd.nodes('master'), ...this.shardBarriers(this.cmd)] : [this.cmd]),
      channel: CHANNELS.node(this.node),
      up: () => this.redis.up && this.redis.listening,
      waitMs: BARRIER_WAIT_MS,
    });
    this.redis.attach({
      count: () => this.registry.size,
      records: () => [...this.registry.values()].map((c) => [c.id, JSON.stringify(this.directory.record(c))]),
      reasserted: (takenForDead) => this.reasserted(takenForDead),
      ticked: () => this.presenceRelay.pending && this.presenceRelay.flush(),
      lifeLost: () => this.publisher.forgetTopics(),
      subscriber: (up) => (up ? this.cursors.catchUp() : this.barrier.release()),
      message: (channel, payload) => this.bus.receive(channel, payload),
    });
    this.interest = new Interest({
      listener: this.redis.shards ?? this.redis.bus,
      scheme: this.redis.shards ? SHARDED : CLASSIC,
      lingerMs: cluster.interestLingerMs ?? 5000,
      dropped: () => this.interestDropped(),
      failed: (err) => this.log.info({ err: err.message }, 'interest (un)subscribe failed; the subscriber connection subscribes again when it is back'),
    });
    // A filter's first local subscriber makes the node listen for it, its last one (after a linger) stop.
    this.index.onFilter = (filter, held) => {
      if (held) this.interest.want(filter);
      else this.interest.release(filter);
      this.stats.clusterChannels = this.interest.size;
    };
  }

  /** Channels were dropped: what the node knew of the topics it no longer hears is stale (it may miss any now). */
  private interestDropped(): void {
    this.stats.clusterChannels = this.interest.size;
    const hears = (topic: string) => this.interest.receives(topic);
    this.cursors.keepOnly(hears);
    this.own.keepOnly(hears);
  }

  /**
   * On a Redis Cluster the messages come over the sharded connections (one per master), not the classic subscriber:
   * a barrier token is also SPUBLISHed through each master, on a partition it serves, and comes back on this node's
   * sharded connection to it after every message that master published before (shards.ts).
   */
  private shardBarriers(cmd: Cluster): { publish(channel: string, message: string): Promise<unknown> }[] {
    const seen = new Set<string>();
    const via: { publish(channel: string, message: string): Promise<unknown> }[] = [];
    for (let k = 0; k < PARTITIONS; k++) {
      const owner = cmd.slots[keySlot(partitionTag(k))]?.[0];
      if (owner === undefined || seen.has(owner)) continue;
      seen.add(owner);
      const channel = CHANNELS.shardBarrier(k, this.node);
      via.push({ publish: (_, message) => cmd.spublish(channel, message) });
    }
    return via;
  }

  /** Messages that could not be filled from the streams (trimmed before this node caught up). */
  get gapsSkipped(): number {
    return this.cursors.gapsSkipped;
  }

  /** `count` entries of `topic`'s stream from seq `from` (scripts.ts READ). */
  private readStream(topic: string, from: number, count: number): Promise<(string | null)[]> {
    return this.script(LUA.READ, [KEYS.meta(topic), KEYS.log(topic), KEYS.sizes(topic)], [String(from), String(count)]) as Promise<(string | null)[]>;
  }

  /** Waits until this node hears every channel `filter` needs (at once while the subscriber is down: it catches up when back). */
  private async interestReady(filter: string): Promise<void> {
    if (this.redis.listening) await this.interest.ready(filter);
  }

  override async start(): Promise<void> {
    await this.redis.start();
  }

  override async close(): Promise<void> {
    if (this.redis.closed) return;
    this.interest.close();
    for (const o of this.occupancies) await o.close();
    await this.redis.close(() => this.order.settle(2000));
  }

  override health(): 'ok' | 'degraded' {
    return this.redis.health();
  }

  override get life(): string {
    return this.redis.life;
  }

  private readonly occupancies = new Set<ClusterOccupancy>();

  /** Holders of each filter across the cluster (webhooks' topic.occupied / topic.vacated, said once: occupancy.ts). */
  override occupancy(listener: OccupancyListener): Occupancy {
    const o = new ClusterOccupancy({ node: this.node, cmd: this.redis.cmd, scripts: this.redis.scripts, listener, tickMs: this.cluster.tickMs ?? 1500, log: this.log });
    this.occupancies.add(o);
    return o;
  }

  override nextSessionId(): string {
    return this.redis.ids.take();
  }

  /**
   * After the node re-asserted itself: when it had been taken for dead every node heard its clients end, so each is
   * announced again (`join` per filter) and the held presence events, older than that, are dropped; otherwise the
   * held events go out in the order they happened.
   */
  private reasserted(takenForDead: boolean): void {
    if (takenForDead) this.presenceRelay.announceAgain([...this.registry.values()].map((s) => ({ subject: subjectOf(s), filters: s.subscriptions })));
    else this.presenceRelay.flush();
  }

  // ---- Redis plumbing -------------------------------------------------------------------------------------------

  private script(lua: string, keys: string[], args: string[]): Promise<unknown> {
    return this.redis.script(lua, keys, args);
  }

  /** Queues request `op` after the session's earlier requests (see RequestOrder). */
  private enqueue(session: S, op: () => Promise<void> | void, id?: FrameId): void {
    this.order.enqueue(session, op, { id });
  }

  /** Queues a step of the session's own (join, leave, activity, ping, regrant): in its order, never refused for load. */
  private enqueueStep(session: S, op: () => Promise<void> | void, id?: FrameId): void {
    this.order.enqueue(session, op, { id, counted: false });
  }

  // ---- sessions -------------------------------------------------------------------------------------------------

  override join(link: S, req: JoinRequest): void {
    if (req.grant) {
      link.grant = req.grant;
      link.nameFixed = true;
    }
    this.registry.add(link); // under its id until a name is claimed
    this.roster.clientChanged(link.subscriptions);
    this.stats.connectionsOpened++;
    this.enqueueStep(link, async () => {
      const { name, problem } = await this.directory.claimAtJoin(link, req.grant?.name ?? req.name, this.defaultNameBase(link));
      // Gone while its name was claimed: its leave (queued behind this step) drops it under the name it had then,
      // so the name claimed here is freed now (else it stays taken in the cluster after the client left).
      if (!this.registry.has(link)) return void (await this.directory.drop(link.id, name));
      this.registry.rename(link, name);
      await this.directory.mirror(link);
      // The filters asked for at connect are heard before hello: a message published after it reaches the client.
      const initial = [...(req.topics ?? []), ...(req.presenceTopics ?? [])].filter((f) => filterError(f) === null);
      for (const f of initial) this.interest.want(f);
      try {
        await Promise.all(initial.map((f) => this.interestReady(f)));
        if (!this.registry.has(link)) return;
        this.greet(link);
        if (problem) this.fail(link, problem);
        if (this.subscribeAtConnect(link, req)) await this.directory.mirror(link);
      } finally {
        for (const f of initial) this.interest.release(f);
      }
    });
  }

  override leave(link: S, cause: LeaveCause): void {
    if (!this.unregister(link)) return;
    const filters = [...link.subscriptions];
    link.subscriptions.clear();
    link.presence.clear();
    this.live.forget(link);
    const subject = subjectOf(link);
    this.enqueueStep(link, async () => {
      for (const filter of filters) this.presenceRelay.publish(cause, subject, filter);
      await this.directory.drop(subject.id, subject.name);
    });
  }

  override forget(link: S): void {
    super.forget(link);
    link.subscriptions.clear();
    this.live.forget(link);
    this.enqueueStep(link, () => this.directory.drop(link.id, link.name));
  }

  override activity(link: S, event: 'idle' | 'active'): void {
    if (!this.registry.has(link)) return;
    this.roster.clientChanged(link.subscriptions);
    this.enqueueStep(link, async () => {
      for (const filter of link.subscriptions) this.announce(event, link, filter);
      await this.directory.mirror(link);
    });
  }

  // ---- requests -------------------------------------------------------------------------------------------------

  override handle(link: S, frame: RequestFrame): void {
    switch (frame.op) {
      case 'sub':
        return this.enqueue(link, () => this.subAsync(link, frame), frame.id);
      case 'unsub':
        return this.enqueue(link, () => this.unsubAsync(link, frame), frame.id);
      case 'pub':
        return this.order.enqueueEarly(link, () => this.pubStart(link, frame), (result) => this.pubAnswer(link, frame, result), frame.id);
      case 'send':
        return this.enqueue(link, () => this.sendAsync(link, frame), frame.id);
      case 'who':
        return this.enqueue(link, () => this.whoAsync(link, frame), frame.id);
      case 'rename':
        return this.enqueue(link, () => this.renameAsync(link, frame), frame.id);
    }
  }

  override ping(link: S, id: FrameId | undefined): void {
    this.enqueueStep(
      link,
      async () => {
        await this.barrier.wait();
        link.send(id === undefined ? { op: 'pong' } : { op: 'pong', id });
      },
      id,
    );
  }

  private async subAsync(link: S, frame: FrameOf<'sub'>): Promise<void> {
    // A resuming client's live messages wait from the moment it is subscribed until its replay is queued.
    const resuming = frame.since !== undefined;
    if (resuming) this.live.hold(link);
    try {
      const added = this.subscriptions.add(link, frame.topic, frame.presence === true, frame.id);
      if (added instanceof ProtocolError) return this.fail(link, added);
      // Before the ack (and before a resume reads the streams): what is published from now on reaches this node.
      await this.interestReady(frame.topic);
      if (added) await this.directory.mirror(link); // before the ack: `who` on any node shows it once the client has its ack
      if (frame.since === undefined) {
        this.ack(link, frame.id, { life: this.redis.life });
      } else if (!(await this.resumeFromStreams(link, frame))) {
        if (added) {
          this.subscriptions.remove(link, frame.topic);
          await this.directory.mirror(link);
        }
        return;
      }
      if (added) this.announce('join', link, frame.topic);
    } finally {
      if (resuming) this.live.release(link);
    }
  }

  /** A fresh token, in the session's order: filters it no longer allows are dropped (and mirrored) before the ack. */
  override regrant(link: S, grant: Grant, id: FrameId | undefined): void {
    this.enqueueStep(
      link,
      async () => {
        const dropped = this.takeGrant(link, grant);
        for (const topic of dropped) await this.unsubAsync(link, { op: 'unsub', topic });
        this.grantTaken(link, grant, dropped, id);
      },
      id,
    );
  }

  private async unsubAsync(link: S, frame: FrameOf<'unsub'>): Promise<void> {
    if (this.subscriptions.remove(link, frame.topic)) {
      await this.directory.mirror(link);
      this.announce('leave', link, frame.topic);
    }
    this.ack(link, frame.id);
  }

  private pubStart(link: S, frame: FrameOf<'pub'>): Promise<PublishResult | ProtocolError> {
    const refused = publishRefusal(link, frame);
    if (refused) return Promise.resolve(refused);
    return this.publisher.publish(frame.topic, frame.data, link, frame.echo !== false, frame.id, frame.key, frame.qos);
  }

  /** The in-memory engine's synchronous publish cannot wait for Redis: the cluster publishes with publishAsync. */
  override publish(_topic: string, _data: unknown, _key?: string): PublishResult | ProtocolError {
    return new ProtocolError('unavailable', 'the cluster engine publishes asynchronously (publishAsync)');
  }

  override publishAsync(topic: string, data: unknown, key?: string): Promise<PublishResult | ProtocolError> {
    return this.publisher.publish(topic, data, null, true, undefined, key);
  }

  private async sendAsync(link: S, frame: FrameOf<'send'>): Promise<void> {
    const local = this.registry.find(frame.to);
    let target: { id: string; name: string; node: string } | undefined = local && { id: local.id, name: local.name, node: this.node };
    if (!target) {
      if (!this.redis.up) return this.fail(link, unavailable(frame.id));
      const r = await this.directory.find(frame.to);
      if (r) target = { id: r.id, name: r.name, node: r.node };
    }
    const refused = sendRefusal(link, frame, target);
    if (refused) return this.fail(link, refused);
    const encoded = encodeData(frame.data, frame.id);
    if (encoded instanceof ProtocolError) return this.fail(link, encoded);
    if (local) {
      if (this.queueDirect(link, frame, local, encoded)) this.ack(link, frame.id);
      return;
    }
    const received = await this.bus.direct(target!.node, target!.id, { id: link.id, name: link.name }, encoded.json);
    if (!received) return this.fail(link, new ProtocolError('not_found', `no client '${frame.to}'`, frame.id));
    this.ack(link, frame.id);
  }

  private async whoAsync(link: S, frame: FrameOf<'who'>): Promise<void> {
    const { topic } = frame;
    const after = whoStart(link, frame);
    if (after instanceof ProtocolError) return this.fail(link, after);
    if (!this.redis.up) return this.fail(link, unavailable(frame.id));
    const records = await this.directory.all();
    const members =
      topic === undefined ? records : isWildcard(topic) ? records.filter((r) => r.subs.includes(topic)) : records.filter((r) => r.subs.some((f) => filterMatches(f, topic)));
    // Every record was read and parsed for this answer: the asker pays for all of them, not only for its page.
    queueWhoPage(link, frame.id, new Roster<ClientRecord>().page(topic ?? '', () => members, after, frame.limit ?? WHO_LIMIT_DEFAULT, link.grant?.admin === true), records.length);
  }

  private async renameAsync(link: S, frame: FrameOf<'rename'>): Promise<void> {
    const problem = this.renameRefusal(link, frame);
    if (problem) return this.fail(link, problem);
    const old = link.name;
    if (old === frame.name) return this.ack(link, frame.id, { name: old });
    if (!this.redis.up) return this.fail(link, unavailable(frame.id));
    if (!(await this.directory.claimName(link, frame.name, old))) return this.fail(link, new ProtocolError('name_taken', `name '${frame.name}' is taken`, frame.id));
    this.renamed(link, frame.name, frame.id);
  }

  // ---- resume ---------------------------------------------------------------------------------------------------

  /** Answers a `sub` with a position from the topics' streams; false when Redis could not answer (then: unavailable). */
  private async resumeFromStreams(link: S, frame: FrameOf<'sub'>): Promise<boolean> {
    try {
      if (!this.redis.up) {
        this.fail(link, unavailable(frame.id));
        return false;
      }
      const terms = resumeTerms(frame, this.redis.life, link.mailbox, this.replayLimits);
      const store = { topics: () => this.cmd.smembers(KEYS.topics), read: (t: string, from: number, count: number) => this.readStream(t, from, count), historySize: this.options.historySize };
      const { ack, messages, positions } = await resumeFromStreams(store, frame, terms, this.redis.life);
      // Always answered, as on one node: a `sub` with `since` asked for its verdict, with or without an id.
      link.send(ackFrame(frame.id, ack));
      for (const m of messages) link.mailbox.push(m);
      // Live messages up to each position were replayed (or lie before the client's position): not again.
      this.live.replayedTo(link, positions);
      return true;
    } catch (err) {
      const refused = refusal(err, frame.id);
      if (!refused) throw err;
      this.fail(link, refused);
      return false;
    }
  }

  // ---- the bus --------------------------------------------------------------------------------------------------

  /** A direct from another node for local client `to`, within its budget for directs. */
  private directArrived(to: string, from: { id: string; name: string }, out: Outgoing): void {
    const target = this.registry.find(to);
    if (!target) return;
    if (!target.mailbox.acceptsDirect(out.bytes)) {
      this.stats.directsRefused++;
      this.log.info({ client: target.id, from: from.id }, 'direct from another node dropped: recipient over its budget for directs');
      return;
    }
    target.mailbox.push(out);
  }

  /** Presence about a local client goes on the bus; every node (this one too) tells its own watchers. */
  protected override announce(event: PresenceEvent, subject: S, filter: string, old?: string): void {
    if ((subject as unknown) instanceof RemoteClient) return super.announce(event, subject, filter, old);
    this.presenceRelay.publish(event, subjectOf(subject), filter, old);
  }
}

/** A session as the subject of a presence event on the bus (with the connect hook's `meta`, shown on every node). */
function subjectOf(s: Session): PresenceSubject {
  const meta = s.publicInfo().meta;
  return meta === undefined ? { id: s.id, name: s.name, transport: s.transport, addr: s.addr } : { id: s.id, name: s.name, transport: s.transport, addr: s.addr, meta };
}

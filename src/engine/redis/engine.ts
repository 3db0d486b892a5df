// RedisEngine: the cluster engine. Many broker processes on one Redis behave as one broker: one total order and
// gapless seq per topic (a Lua script numbers, stores and publishes each message at once), resumes from the
// topic's stream on any node, presence / names / who / directs across nodes, dead nodes reaped by a survivor.
// Local routing (topic index, presence watchers, coalescing, roster pages) is the in-memory engine's, inherited.
// Requests of one session run in arrival order on a promise chain, so replies keep the order of the requests.
import { Cluster, type Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Grant } from '../../auth/grant.js';
import { MemoryEngine, type MemoryEngineOptions } from '../memory.js';
import type { JoinRequest, LeaveCause, PublishResult, RequestFrame, Session } from '../engine.js';
import { ackFrame, nameError, type FrameOf, type PresenceEvent, type PublicClient, type ClientInfo, type Transport } from '../../protocol/frames.js';
import { ProtocolError, type FrameId } from '../../protocol/errors.js';
import { EncodedData, encodeData, Outgoing } from '../../protocol/outgoing.js';
import { filterError, filterMatches, isWildcard } from '../../protocol/topic.js';
import { Roster, WHO_LIMIT_DEFAULT } from '../roster.js';
import { resumeTerms, type Position } from '../resume.js';
import { CHANNELS, KEYS } from './keys.js';
import * as LUA from './scripts.js';
import { Interest, publishChannels } from './interest.js';
import { Barrier } from './barrier.js';
import { Cursors, MAX_CURSORS, parseBusMessage, type BusMessage } from './cursors.js';
import { RedisNode } from './node.js';
import { messageKey, OwnDeliveries } from './own-deliveries.js';
import { PresenceRelay, type BusPresence, type PresenceSubject } from './presence-relay.js';
import { RequestOrder } from './request-order.js';
import { resumeFromStreams } from './stream-resume.js';
import { duplicateOf, PUBLISH_KEY_WINDOW_MS } from '../idempotency.js';
import { maybeRan, readyFor } from './outcome.js';

export interface RedisEngineOptions extends MemoryEngineOptions {
  /** redis://host:port[/db], rediss://…, or redis+cluster://host:port,host:port,… (a Redis Cluster's seed nodes) */
  url: string;
  /** Requests this node may have waiting on Redis at once; beyond it: `unavailable` (bounded memory while Redis is slow). */
  maxInflight: number;
  log: Logger;
  /** Heartbeat key TTL; the node counts as dead this long after its last refresh. */
  nodeTtlMs?: number;
  /** How often the heartbeat is refreshed and dead nodes are looked for. */
  tickMs?: number;
  /** How long the main event loop may be stuck before the heartbeat thread stops refreshing (src/engine/redis/heartbeat.ts). */
  nodeHangMs?: number;
  /** How long start() waits for Redis. */
  connectTimeoutMs?: number;
  /** How long a Redis command may take before it fails (a publish then answers outcome_unknown, the node is degraded). */
  commandTimeoutMs?: number;
  /** How long the node keeps listening to a topic's channel after its last local subscriber left (interest.ts). */
  interestLingerMs?: number;
}

/** What other nodes know of a client (the `sb:{g}:clients` hash). */
interface ClientRecord {
  id: string;
  name: string;
  addr: string;
  transport: Transport;
  state: string;
  node: string;
  subs: string[];
}

/** A client of another node, as the subject of a presence event delivered here. */
class RemoteClient {
  constructor(readonly c: { id: string; name: string; transport: Transport; addr: string }) {}
  get id(): string {
    return this.c.id;
  }
  get name(): string {
    return this.c.name;
  }
  publicInfo(): PublicClient {
    return { id: this.c.id, name: this.c.name, transport: this.c.transport };
  }
  info(): ClientInfo {
    return { id: this.c.id, name: this.c.name, addr: this.c.addr, transport: this.c.transport };
  }
}

const OWN_DELIVERY_WAIT_MS = 2000;
const BARRIER_WAIT_MS = 1000;

const unavailable = (id?: FrameId) => new ProtocolError('unavailable', 'the cluster store (Redis) is unreachable; retry later', id);
const unknownOutcome = (id?: FrameId) =>
  new ProtocolError('outcome_unknown', 'the cluster store (Redis) did not answer: the message may or may not have been published; a retry with the same key publishes it once', id);

/** What the client is told when Redis cannot take a request: unreachable, or full (maxmemory with noeviction). */
function refusal(err: unknown, id?: FrameId): ProtocolError | undefined {
  if (isRedisDown(err)) return unavailable(id);
  if (/^OOM |OOM command not allowed/.test(String((err as Error)?.message ?? err))) {
    return new ProtocolError('unavailable', 'the cluster store (Redis) is out of memory (maxmemory); retry later', id);
  }
  return undefined;
}

export class RedisEngine<S extends Session = Session> extends MemoryEngine<S> {
  /** This process as a cluster member: connections, life, heartbeat, reaping (node.ts). */
  readonly redis: RedisNode;
  /** This process's id in the cluster (heartbeat key, node channel, epochs it creates). */
  readonly node: string;
  private readonly cmd: Redis | Cluster;
  private readonly log: Logger;
  /** Each session's requests in arrival order, at most maxInflight waiting on Redis. */
  private readonly order: RequestOrder<S>;
  /** What the bus brings, per topic in seq order (gaps filled from the streams). */
  private readonly cursors: Cursors;
  /** Delivered counts of this node's own publishes, met on the bus before or after the script's reply. */
  private readonly own = new OwnDeliveries(OWN_DELIVERY_WAIT_MS);
  /** Sessions resuming: their live messages wait here until the replay is queued. */
  private readonly resuming = new Map<S, BusMessage[]>();
  /** After a resume: per topic the position replayed up to; live messages at or below it are duplicates. */
  private readonly floors = new Map<S, Map<string, Position>>();
  private readonly knownTopics = new Set<string>();
  /** Presence about this node's clients, onto the bus (held while Redis is unreachable). */
  private readonly presenceRelay: PresenceRelay;
  private epochs = 0;
  private readonly barrier: Barrier;
  /** The channels this node listens on for messages (interest routing, src/engine/redis/interest.ts). */
  readonly interest: Interest;

  constructor(readonly cluster: RedisEngineOptions) {
    super(cluster);
    this.redis = new RedisNode(cluster);
    this.node = this.redis.id;
    this.cmd = this.redis.cmd;
    this.log = this.redis.log;
    this.order = new RequestOrder<S>({ maxInflight: cluster.maxInflight, fail: (s, err) => this.fail(s, err), refusal, log: this.log });
    this.cursors = new Cursors({
      deliver: (m) => this.deliver(m),
      read: (topic, from, count) => this.readStream(topic, from, count),
      closed: () => this.redis.closed,
      log: this.log,
    });
    this.presenceRelay = new PresenceRelay({
      up: () => this.redis.up,
      publish: (payload) => this.relay(CHANNELS.bus, payload),
      publishAll: (payloads) => this.relayAll(payloads),
      log: this.log,
    });
    this.barrier = new Barrier({
      via: () => (this.cmd instanceof Cluster ? this.cmd.nodes('master') : [this.cmd]),
      channel: CHANNELS.node(this.node),
      up: () => this.redis.up && this.redis.listening,
      waitMs: BARRIER_WAIT_MS,
    });
    this.redis.attach({
      count: () => this.registry.size,
      records: () => [...this.registry.values()].map((c) => [c.id, JSON.stringify(this.record(c))]),
      reasserted: (takenForDead) => this.reasserted(takenForDead),
      ticked: () => this.presenceRelay.pending && this.presenceRelay.flush(),
      lifeLost: () => this.knownTopics.clear(),
      subscriber: (up) => (up ? this.cursors.catchUp() : this.barrier.release()),
      message: (channel, payload) => this.onBus(channel, payload),
    });
    this.interest = new Interest({
      listener: this.redis.bus,
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

  async start(): Promise<void> {
    await this.redis.start();
  }

  async close(): Promise<void> {
    if (this.redis.closed) return;
    this.interest.close();
    await this.redis.close(() => this.order.settle(2000));
  }

  health(): 'ok' | 'degraded' {
    return this.redis.health();
  }

  override get life(): string {
    return this.redis.life;
  }

  nextSessionId(): string {
    return this.redis.ids.take();
  }

  /**
   * After the node re-asserted itself: when it had been taken for dead every node heard its clients end, so each is
   * announced again (`join` per filter) and the held presence events, older than that, are dropped; otherwise the
   * held events go out in the order they happened.
   */
  private reasserted(takenForDead: boolean): void {
    if (!takenForDead) return this.presenceRelay.flush();
    const heldDropped = this.presenceRelay.discard();
    let joins = 0;
    for (const s of this.registry.values()) {
      for (const filter of s.subscriptions) {
        this.presenceRelay.publish('join', subjectOf(s), filter);
        joins++;
      }
    }
    this.log.warn({ clients: this.registry.size, joins, heldDropped }, 'this node had been taken for dead: its clients announced again');
  }

  // ---- Redis plumbing -------------------------------------------------------------------------------------------

  private script(lua: string, keys: string[], args: string[]): Promise<unknown> {
    return this.redis.script(lua, keys, args);
  }

  /** Queues `op` after the session's earlier requests (see RequestOrder). */
  private enqueue(session: S, op: () => Promise<void> | void, id?: FrameId, counted = true, pub = false): void {
    this.order.enqueue(session, op, { id, counted, pub });
  }

  private record(s: S): ClientRecord {
    return { id: s.id, name: s.name, addr: s.addr, transport: s.transport, state: s.state, node: this.node, subs: [...s.subscriptions] };
  }

  private async writeRecord(s: S): Promise<void> {
    if (!this.registry.has(s)) return;
    await this.cmd.multi().hset(KEYS.clients, s.id, JSON.stringify(this.record(s))).sadd(KEYS.nodeClients(this.node), s.id).exec();
  }

  /** Mirrors a local change to Redis; while Redis is unreachable the re-assert after reconnect carries it. */
  private async mirror(s: S): Promise<void> {
    await this.writeRecord(s).catch((err: Error) => this.log.debug({ err: err.message, client: s.id }, 'client record not written (re-asserted on reconnect)'));
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
    this.enqueue(
      link,
      async () => {
        const asked = req.grant?.name ?? req.name;
        let problem: ProtocolError | null = null;
        let name: string | undefined;
        if (asked !== undefined) {
          const err = nameError(asked);
          if (err) problem = new ProtocolError('bad_name', err);
          else if (await this.claimName(link, asked, '')) name = asked;
          else problem = new ProtocolError('name_taken', `name '${asked}' is taken`);
        }
        name ??= await this.claimDefaultName(link);
        if (!this.registry.has(link)) return; // gone while its name was claimed
        this.registry.rename(link, name);
        await this.mirror(link);
        // The filters asked for at connect are heard before hello: a message published after it reaches the client.
        const initial = [...(req.topics ?? []), ...(req.presenceTopics ?? [])].filter((f) => filterError(f) === null);
        for (const f of initial) this.interest.want(f);
        try {
          await Promise.all(initial.map((f) => this.interestReady(f)));
          if (!this.registry.has(link)) return;
          this.greet(link);
          if (problem) this.fail(link, problem);
          if (this.subscribeAtConnect(link, req)) await this.mirror(link);
        } finally {
          for (const f of initial) this.interest.release(f);
        }
      },
      undefined,
      false,
    );
  }

  /** Claims `name` for `link` in Redis (freeing `old`); true when it is now the link's. Redis down: local check only. */
  private async claimName(link: S, name: string, old: string): Promise<boolean> {
    const holder = this.registry.find(name);
    if (holder && holder !== link) return false;
    if (!this.redis.up) return true;
    try {
      const record = JSON.stringify({ ...this.record(link), name });
      return (await this.script(LUA.CLAIM_NAME, [KEYS.names, KEYS.clients], [name, link.id, old, this.registry.has(link) ? record : ''])) === 1;
    } catch (err) {
      if (!isRedisDown(err)) throw err;
      return true;
    }
  }

  private async claimDefaultName(link: S): Promise<string> {
    const base = this.defaultNameBase(link);
    for (let k = 1; ; k++) {
      const name = k === 1 ? base : `${base}-${k}`;
      if (await this.claimName(link, name, '')) return name;
    }
  }

  override leave(link: S, cause: LeaveCause): void {
    if (!this.registry.remove(link)) return;
    this.roster.clientChanged(link.subscriptions);
    this.stats.connectionsClosed++;
    const filters = [...link.subscriptions];
    for (const filter of filters) {
      this.index.remove(filter, link);
      this.presence.unwatch(filter, link);
    }
    link.subscriptions.clear();
    link.presence.clear();
    this.resuming.delete(link);
    this.floors.delete(link);
    const subject = subjectOf(link);
    this.enqueue(
      link,
      async () => {
        for (const filter of filters) this.presenceRelay.publish(cause, subject, filter);
        await this.dropRecord(subject.id, subject.name);
      },
      undefined,
      false,
    );
  }

  override forget(link: S): void {
    super.forget(link);
    link.subscriptions.clear();
    this.resuming.delete(link);
    this.floors.delete(link);
    this.enqueue(link, () => this.dropRecord(link.id, link.name), undefined, false);
  }

  private async dropRecord(id: string, name: string): Promise<void> {
    await this.script(LUA.DROP_CLIENT, [KEYS.clients, KEYS.names, KEYS.nodeClients(this.node)], [id, name]).catch((err: Error) =>
      this.log.debug({ err: err.message, client: id }, 'client record not dropped (re-assert drops it)'),
    );
  }

  override activity(link: S, event: 'idle' | 'active'): void {
    if (!this.registry.has(link)) return;
    this.roster.clientChanged(link.subscriptions);
    this.enqueue(
      link,
      async () => {
        for (const filter of link.subscriptions) this.announce(event, link, filter);
        await this.mirror(link);
      },
      undefined,
      false,
    );
  }

  // ---- requests -------------------------------------------------------------------------------------------------

  override handle(link: S, frame: RequestFrame): void {
    switch (frame.op) {
      case 'sub':
        return this.enqueue(link, () => this.subAsync(link, frame), frame.id);
      case 'unsub':
        return this.enqueue(link, () => this.unsubAsync(link, frame), frame.id);
      case 'pub': {
        // Behind nothing but other pubs, a pub's script is sent at once (Redis runs one connection's commands in
        // order, so seq order = request order); only its reply waits its turn. Pipelined publishers are not
        // limited to one Redis round trip per message.
        if (this.order.waitingOthers(link) || this.order.full) return this.enqueue(link, () => this.pubAsync(link, frame), frame.id);
        const started = this.pubStart(link, frame).then(
          (r) => ({ r }),
          (err: unknown) => ({ err }),
        );
        return this.enqueue(
          link,
          async () => {
            const done = await started;
            if ('err' in done) throw done.err;
            this.pubAnswer(link, frame, done.r);
          },
          frame.id,
          true,
          true,
        );
      }
      case 'send':
        return this.enqueue(link, () => this.sendAsync(link, frame), frame.id);
      case 'who':
        return this.enqueue(link, () => this.whoAsync(link, frame), frame.id);
      case 'rename':
        return this.enqueue(link, () => this.renameAsync(link, frame), frame.id);
    }
  }

  ping(link: S, id: FrameId | undefined): void {
    this.enqueue(
      link,
      async () => {
        await this.barrier.wait();
        link.send(id === undefined ? { op: 'pong' } : { op: 'pong', id });
      },
      id,
      false,
    );
  }

  private async subAsync(link: S, frame: FrameOf<'sub'>): Promise<void> {
    // A resuming client's live messages wait from the moment it is subscribed until its replay is queued.
    const buffer: BusMessage[] | undefined = frame.since === undefined ? undefined : [];
    if (buffer) this.resuming.set(link, buffer);
    try {
      const added = this.subscribe(link, frame.topic, frame.presence === true, frame.id);
      if (added instanceof ProtocolError) return this.fail(link, added);
      // Before the ack (and before a resume reads the streams): what is published from now on reaches this node.
      await this.interestReady(frame.topic);
      if (added) await this.mirror(link); // before the ack: `who` on any node shows it once the client has its ack
      if (frame.since === undefined) {
        this.ack(link, frame.id, { life: this.redis.life });
      } else if (!(await this.resumeFromStreams(link, frame))) {
        if (added) {
          this.unsubscribe(link, frame.topic);
          await this.mirror(link);
        }
        return;
      }
      if (added) this.announce('join', link, frame.topic);
    } finally {
      if (buffer) {
        this.resuming.delete(link);
        for (const m of buffer) if (this.stillWants(link, m)) this.pushLive(link, m);
      }
    }
  }

  /** A fresh token, in the session's order: filters it no longer allows are dropped (and mirrored) before the ack. */
  override regrant(link: S, grant: Grant, id: FrameId | undefined): void {
    this.enqueue(
      link,
      async () => {
        const dropped = this.takeGrant(link, grant);
        for (const topic of dropped) await this.unsubAsync(link, { op: 'unsub', topic });
        this.grantTaken(link, grant, dropped, id);
      },
      id,
      false,
    );
  }

  private async unsubAsync(link: S, frame: FrameOf<'unsub'>): Promise<void> {
    if (this.unsubscribe(link, frame.topic)) {
      await this.mirror(link);
      this.announce('leave', link, frame.topic);
    }
    this.ack(link, frame.id);
  }

  private async pubAsync(link: S, frame: FrameOf<'pub'>): Promise<void> {
    this.pubAnswer(link, frame, await this.pubStart(link, frame));
  }

  private pubStart(link: S, frame: FrameOf<'pub'>): Promise<PublishResult | ProtocolError> {
    const refused = this.publishRefusal(link, frame);
    if (refused) return Promise.resolve(refused);
    return this.publishVia(frame.topic, frame.data, link, frame.echo !== false, frame.id, frame.key);
  }

  /** The in-memory engine's synchronous publish cannot wait for Redis: the cluster publishes with publishAsync. */
  override publish(_topic: string, _data: unknown, _key?: string): PublishResult | ProtocolError {
    return new ProtocolError('unavailable', 'the cluster engine publishes asynchronously (publishAsync)');
  }

  publishAsync(topic: string, data: unknown, key?: string): Promise<PublishResult | ProtocolError> {
    return this.publishVia(topic, data, null, true, undefined, key);
  }

  /**
   * One script numbers, stores and publishes the message. The result waits until the message came back over the bus
   * and was delivered here, so a publisher's own echo precedes its ack and `delivered` counts this node's deliveries.
   */
  private async publishVia(topic: string, data: unknown, from: S | null, echo: boolean, id?: FrameId, key?: string): Promise<PublishResult | ProtocolError> {
    const encoded = encodeData(data, id);
    if (encoded instanceof ProtocolError) return encoded;
    if (!this.redis.up) return unavailable(id);
    const head = `{"op":"msg","topic":${JSON.stringify(topic)},"seq":`;
    const sender = from ? `,"from":${JSON.stringify({ id: from.id, name: from.name })}` : '';
    const tail = `${sender},"ts":${Date.now()},"data":${encoded.json}}`;
    const prefix = `m${this.node}\n${from?.transport ?? ''}\n${from?.addr ?? ''}\n${from && !echo ? from.id : ''}\n`;
    if (!this.knownTopics.has(topic)) {
      // Sent before the script on the same connection: a topic is listed before its first message exists.
      const listed = this.cmd
        .sadd(KEYS.topics, topic)
        .then(() => this.knownTopics.size < MAX_CURSORS && this.knownTopics.add(topic))
        .catch(() => undefined);
      // On a Redis Cluster the set (`{g}`) and the topic live on different shards, one connection each: waited for.
      if (this.cmd instanceof Cluster) await listed;
    }
    const fresh = `${this.redis.life}.${this.node}${(++this.epochs).toString(36)}`;
    // Heard here (a local filter wants it): the result waits for the message to come back, so `delivered` counts
    // this node's deliveries and an echo precedes the ack. Not heard: nobody here can receive it (0 here).
    const heard = this.interest.receives(topic);
    const [topicChannel, familyChannel] = publishChannels(topic);
    let reply: [number, string, 1?];
    const keys = [KEYS.meta(topic), KEYS.log(topic), KEYS.sizes(topic)];
    const args = [fresh, head, tail, String(this.options.historySize), topicChannel, prefix, String(this.options.historyTopicBytes), familyChannel];
    if (key !== undefined) {
      keys.push(KEYS.pubKey(topic, key));
      args.push(String(PUBLISH_KEY_WINDOW_MS));
    }
    const sentReady = readyFor(this.cmd, keys[0]!);
    try {
      reply = (await this.script(LUA.PUBLISH, keys, args)) as [number, string, 1?];
    } catch (err) {
      // Written on a ready connection, then no answer (hung, or the connection broke): it may have run.
      const refused = maybeRan(err, sentReady) ? unknownOutcome(id) : refusal(err, id);
      if (!refused) throw err;
      this.redis.noteTimeout(err);
      return refused;
    }
    const [seq, epoch, duplicate] = reply;
    if (duplicate) return duplicateOf({ seq, epoch });
    this.stats.published++;
    const delivered = heard ? await this.own.wait(messageKey(topic, epoch, seq)) : 0;
    return { seq, epoch, delivered };
  }

  private async sendAsync(link: S, frame: FrameOf<'send'>): Promise<void> {
    const local = this.registry.find(frame.to);
    let target: { id: string; name: string; node: string } | undefined = local && { id: local.id, name: local.name, node: this.node };
    if (!target) {
      if (!this.redis.up) return this.fail(link, unavailable(frame.id));
      const id = /^c\d+$/.test(frame.to) ? frame.to : await this.cmd.hget(KEYS.names, frame.to);
      const raw = id ? await this.cmd.hget(KEYS.clients, id) : null;
      if (raw) {
        const r = JSON.parse(raw) as ClientRecord;
        target = { id: r.id, name: r.name, node: r.node };
      }
    }
    const refused = this.sendRefusal(link, frame, target);
    if (refused) return this.fail(link, refused);
    const encoded = encodeData(frame.data, frame.id);
    if (encoded instanceof ProtocolError) return this.fail(link, encoded);
    if (local) {
      if (this.queueDirect(link, frame, local, encoded)) this.ack(link, frame.id);
      return;
    }
    const fromJson = JSON.stringify({ id: link.id, name: link.name });
    const received = await this.relay(CHANNELS.node(target!.node), `d${target!.id}\n${fromJson}\n${encoded.json}`, target!.node);
    if (!received) return this.fail(link, new ProtocolError('not_found', `no client '${frame.to}'`, frame.id));
    this.ack(link, frame.id);
  }

  private async whoAsync(link: S, frame: FrameOf<'who'>): Promise<void> {
    const { topic } = frame;
    const after = this.whoStart(link, frame);
    if (after === null) return;
    if (!this.redis.up) return this.fail(link, unavailable(frame.id));
    const records = (await this.cmd.hvals(KEYS.clients)).map((r) => JSON.parse(r) as ClientRecord);
    const members =
      topic === undefined ? records : isWildcard(topic) ? records.filter((r) => r.subs.includes(topic)) : records.filter((r) => r.subs.some((f) => filterMatches(f, topic)));
    // Every record was read and parsed for this answer: the asker pays for all of them, not only for its page.
    this.sendWhoPage(link, frame, new Roster<ClientRecord>().page(topic ?? '', () => members, after, frame.limit ?? WHO_LIMIT_DEFAULT, link.grant?.admin === true), records.length);
  }

  private async renameAsync(link: S, frame: FrameOf<'rename'>): Promise<void> {
    const problem = this.renameRefusal(link, frame);
    if (problem) return this.fail(link, problem);
    const old = link.name;
    if (old === frame.name) return this.ack(link, frame.id, { name: old });
    if (!this.redis.up) return this.fail(link, unavailable(frame.id));
    if (!(await this.claimName(link, frame.name, old))) return this.fail(link, new ProtocolError('name_taken', `name '${frame.name}' is taken`, frame.id));
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
      let floors = this.floors.get(link);
      for (const [topic, p] of positions) {
        if (!floors) this.floors.set(link, (floors = new Map()));
        floors.set(topic, p);
      }
      return true;
    } catch (err) {
      const refused = refusal(err, frame.id);
      if (!refused) throw err;
      this.fail(link, refused);
      return false;
    }
  }

  private stillWants(link: S, m: BusMessage): boolean {
    for (const f of link.subscriptions) if (filterMatches(f, m.topic)) return true;
    return false;
  }

  // ---- the bus --------------------------------------------------------------------------------------------------

  private onBus(channel: string, payload: string): void {
    try {
      switch (payload[0]) {
        case 'm': {
          this.stats.clusterMessagesReceived++;
          const m = parseBusMessage(payload.slice(1));
          if (m) this.cursors.receive(m);
          return;
        }
        case 'p': {
          const p = JSON.parse(payload.slice(1)) as BusPresence;
          super.announce(p.e, new RemoteClient(p.c) as unknown as S, p.f, p.o);
          return;
        }
        case 'd':
          return this.onDirect(payload.slice(1));
        case 'b':
          if (channel === CHANNELS.node(this.node)) this.barrier.arrived(Number(payload.slice(1)));
          return;
      }
    } catch (err) {
      this.log.error({ err, channel }, 'bad bus message');
    }
  }

  /** One message to every matching local subscriber, once each. */
  private deliver(m: BusMessage): void {
    const delivered = this.fanOut(m.topic, m.noEcho, (s) => {
      const buffer = this.resuming.get(s);
      if (!buffer) return this.pushLive(s, m);
      buffer.push(m);
      return true;
    });
    if (m.node === this.node) this.own.delivered(messageKey(m.topic, m.epoch, m.seq), delivered);
  }

  private pushLive(s: S, m: BusMessage): boolean {
    const floors = this.floors.get(s);
    const floor = floors?.get(m.topic);
    if (floor) {
      if (floor.epoch === m.epoch && m.seq <= floor.seq) return false;
      floors!.delete(m.topic);
      if (floors!.size === 0) this.floors.delete(s);
    }
    return s.mailbox.push(m.out);
  }

  private onDirect(body: string): void {
    const a = body.indexOf('\n');
    const b = body.indexOf('\n', a + 1);
    const target = this.registry.find(body.slice(0, a));
    if (!target) return;
    const from = JSON.parse(body.slice(a + 1, b)) as { id: string; name: string };
    const json = body.slice(b + 1);
    const out = new Outgoing({ op: 'direct', from, data: JSON.parse(json) as unknown }, undefined, new EncodedData(json));
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

  /** Held presence events, in order, at once (PresenceRelay.flush). */
  private async relayAll(payloads: string[]): Promise<unknown> {
    const pipe = this.cmd.pipeline();
    for (const payload of payloads) {
      // On a Redis Cluster through the `{g}` shard, like every presence event (relay()); one pipeline: one node.
      if (this.cmd instanceof Cluster) pipe.eval(LUA.RELAY, 1, KEYS.heartbeat(this.node), CHANNELS.bus, payload, '0');
      else pipe.publish(CHANNELS.bus, payload);
    }
    return pipe.exec();
  }

  /**
   * PUBLISH of presence events and directs. On a Redis Cluster a keyless PUBLISH would go to a random master, so two
   * events of one client could overtake each other; they go through the `{g}` shard instead (a script keyed on a
   * heartbeat), like the reaper's timeouts. A cluster counts only its own node's receivers, so a direct to `target`
   * counts as received when that node's heartbeat exists; on one Redis, when a subscriber received it.
   */
  private async relay(channel: string, payload: string, target?: string): Promise<boolean> {
    if (!(this.cmd instanceof Cluster)) return (await this.cmd.publish(channel, payload)) > 0;
    return (await this.script(LUA.RELAY, [KEYS.heartbeat(target ?? this.node)], [channel, payload, target === undefined ? '0' : '1'])) === 1;
  }
}

/**
 * Errors that mean "Redis cannot answer now" (not connected, timed out, loading; on a Redis Cluster also a shard
 * down, slots moving, the cluster not ready): the client gets `unavailable`. CROSSSLOT is not one of them (a bug).
 */
export function isRedisDown(err: unknown): boolean {
  const msg = String((err as Error)?.message ?? err);
  return /Stream isn't writeable|Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|LOADING|enableOfflineQueue|max retries|ETIMEDOUT|EPIPE|Reached the max retries|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes is available|Cluster isn't ready/i.test(msg);
}

/** A session as the subject of a presence event on the bus. */
function subjectOf(s: Session): PresenceSubject {
  return { id: s.id, name: s.name, transport: s.transport, addr: s.addr };
}

// RedisEngine: the cluster engine. Many broker processes on one Redis behave as one broker: one total order and
// gapless seq per topic (a Lua script numbers, stores and publishes each message at once), resumes from the
// topic's stream on any node, presence / names / who / directs across nodes, dead nodes reaped by a survivor.
// Local routing (topic index, presence watchers, coalescing, roster pages) is the in-memory engine's, inherited.
// Requests of one session run in arrival order on a promise chain, so replies keep the order of the requests.
import { createHash, randomBytes } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import { HeartbeatThread } from './heartbeat.js';
import type { Logger } from 'pino';
import type { Grant } from '../../auth/grant.js';
import { MemoryEngine, type MemoryEngineOptions } from '../memory.js';
import type { JoinRequest, LeaveCause, PublishResult, RequestFrame, Session } from '../engine.js';
import { ackFrame, MAX_POSITIONS, nameError, type FrameOf, type PresenceEvent, type PublicClient, type ServerFrame, type ClientInfo, type Transport } from '../../protocol/frames.js';
import { ProtocolError, type FrameId } from '../../protocol/errors.js';
import { EncodedData, encodeData, Outgoing } from '../../protocol/outgoing.js';
import { filterMatches, isWildcard } from '../../protocol/topic.js';
import { Roster, WHO_LIMIT_DEFAULT } from '../roster.js';
import type { MissReason, Position } from '../history.js';
import { CHANNELS, KEYS } from './keys.js';
import * as LUA from './scripts.js';
import { heartbeatConnect, redisConnections, type ClusterSubscriber } from './connections.js';
import { Interest, publishChannels } from './interest.js';
import { filterError } from '../../protocol/topic.js';
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

/** One message as the bus and the stream carry it: the publishing node, the sender's transport and addr, echo. */
interface BusMessage {
  topic: string;
  seq: number;
  epoch: string;
  node: string;
  /** The sender's id when it published with echo: false. */
  noEcho: string;
  out: Outgoing;
}

/** Per topic: the last seq delivered here, and messages held until the gap before them is filled. */
interface Cursor {
  epoch: string;
  seq: number;
  held: Map<number, BusMessage>;
  filling: boolean;
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

const ID_BLOCK = 10_000;
const MAX_CURSORS = 100_000;
/** Presence events a node holds while Redis is unreachable (a few hundred bytes each: names and filters are bounded). */
const MAX_HELD_PRESENCE = 10_000;
/** Of which one client's own events (sub/unsub spam during an outage must not push out its neighbours'). */
const MAX_HELD_PRESENCE_PER_CLIENT = 100;
const MAX_HELD = 10_000;
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

function shortId(bytes: number): string {
  return randomBytes(bytes).readUIntBE(0, bytes).toString(36).padStart(8, '0').slice(-8);
}

export class RedisEngine<S extends Session = Session> extends MemoryEngine<S> {
  /** This process's id in the cluster (heartbeat key, node channel, epochs it creates). */
  readonly node = randomBytes(3).toString('hex');
  readonly cmd: Redis | Cluster;
  readonly bus: Redis | ClusterSubscriber;
  private readonly log: Logger;
  private lifeId = '';
  /** Connected and initialised (life known, node registered). */
  private cmdUp = false;
  private busUp = false;
  private everUp = false;
  private closed = false;
  private readonly chains = new WeakMap<S, Promise<void>>();
  /** Requests other than pub waiting in a session's chain: while there are none, pubs go to Redis at once. */
  private readonly others = new WeakMap<S, number>();
  private readonly pending = new Set<Promise<void>>();
  private inflight = 0;
  private ids = { next: 1, end: 0, spare: undefined as { next: number; end: number } | undefined, refilling: false, highest: 0 };
  private readonly cursors = new Map<string, Cursor>();
  /** Delivered counts of this node's own publishes, met on the bus before or after the script's reply. */
  private readonly own = new Map<string, number | ((delivered: number) => void)>();
  /** Sessions resuming: their live messages wait here until the replay is queued. */
  private readonly resuming = new Map<S, BusMessage[]>();
  /** After a resume: per topic the position replayed up to; live messages at or below it are duplicates. */
  private readonly floors = new Map<S, Map<string, Position>>();
  private readonly knownTopics = new Set<string>();
  /** Presence events that could not be published (Redis unreachable), oldest first, up to MAX_HELD_PRESENCE. */
  private heldPresence: string[] = [];
  /** Held events per client id, charged against MAX_HELD_PRESENCE_PER_CLIENT. */
  private readonly heldBy = new Map<string, number>();
  private presenceDropped = 0;
  /** A command timed out and no tick has been answered since (Redis hung, not disconnected). */
  private hung = false;
  /** Redis Cluster masters that did not answer at the last tick (0 on one Redis). */
  private mastersDown = 0;
  private epochs = 0;
  private barrierBatch: (() => void)[] = [];
  private barrierToken = 0;
  private barrierInFlight: { token: number; waiting: number; resolve: () => void } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: HeartbeatThread | undefined;
  /** cmdReady is running. */
  private initing = false;
  private readonly shas = new Map<string, string>();
  /** Scripts Redis answered on the command connection since it last connected (cleared on close and on NOSCRIPT). */
  private readonly loadedScripts = new Set<string>();
  /** EVALSHAs not answered yet. */
  private shaPending = 0;
  /** Set from a NOSCRIPT until every EVALSHA sent before it was answered: new script calls wait behind it. */
  private scriptGate: { promise: Promise<void>; open: () => void } | undefined;
  private readonly nodeTtlMs: number;
  private readonly tickMs: number;
  /** Gaps that could not be filled from the stream (trimmed before this node caught up). */
  gapsSkipped = 0;
  /** The channels this node listens on for messages (interest routing, src/engine/redis/interest.ts). */
  readonly interest: Interest;

  constructor(readonly cluster: RedisEngineOptions) {
    super(cluster);
    this.log = cluster.log.child({ engine: 'redis', node: this.node });
    this.nodeTtlMs = cluster.nodeTtlMs ?? 5000;
    this.tickMs = cluster.tickMs ?? 1500;
    // One Redis or a Redis Cluster (connections.ts); commands fail at once while disconnected (no offline queue).
    const conns = redisConnections(cluster.url, `sb-${this.node}`, cluster.commandTimeoutMs ?? 3000);
    this.cmd = conns.cmd;
    this.bus = conns.bus;
    // An ioredis `error` event without a listener would crash the process: both connections always have one.
    for (const [conn, role] of [[this.cmd, 'commands'], [this.bus, 'subscriber']] as const) {
      conn.on('error', (err: Error) => this.log.warn({ role, err: err.message }, 'redis connection error'));
    }
    this.cmd.on('close', () => {
      this.loadedScripts.clear();
      this.down('commands');
    });
    this.bus.on('close', () => this.down('subscriber'));
    this.cmd.on('ready', () => void this.cmdReady());
    this.bus.on('ready', () => void this.busReady());
    this.bus.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onBus(channel.toString(), message.toString()));
    this.interest = new Interest({
      listener: this.bus,
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
    for (const topic of this.cursors.keys()) if (!this.interest.receives(topic)) this.cursors.delete(topic);
    for (const [key, waiter] of this.own) {
      const topic = key.slice(0, key.indexOf('\u0000'));
      if (this.interest.receives(topic)) continue;
      this.own.delete(key);
      if (typeof waiter === 'function') waiter(0);
    }
  }

  /** Waits until this node hears every channel `filter` needs (at once while the subscriber is down: it catches up when back). */
  private async interestReady(filter: string): Promise<void> {
    if (this.busUp) await this.interest.ready(filter);
  }

  // ---- lifecycle ----------------------------------------------------------------------------------------------

  async start(): Promise<void> {
    const deadline = this.cluster.connectTimeoutMs ?? 10_000;
    const ready = Promise.all([this.cmd.connect(), this.bus.connect()]);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([ready, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${deadline} ms`)), deadline)))]);
      await this.bus.subscribe(CHANNELS.bus, CHANNELS.node(this.node));
      await this.whenUp(deadline);
    } catch (err) {
      this.closed = true;
      this.cmd.disconnect();
      this.bus.disconnect();
      throw new Error(`cannot reach Redis at ${this.cluster.url}: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    this.timer = setInterval(() => void this.tick(), this.tickMs);
    this.timer.unref();
    this.heartbeat = new HeartbeatThread({
      connect: heartbeatConnect(this.cluster.url),
      key: KEYS.heartbeat(this.node),
      ttlMs: this.nodeTtlMs,
      tickMs: this.tickMs,
      hangMs: Math.max(this.cluster.nodeHangMs ?? 30_000, this.nodeTtlMs),
      name: `sb-${this.node}-hb`,
      log: this.log,
    });
    this.heartbeat.start();
    this.log.info({ life: this.lifeId }, 'cluster node up');
  }

  private async whenUp(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!(this.cmdUp && this.busUp)) {
      if (Date.now() > until) throw new Error('not ready');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.interest.close();
    await this.heartbeat?.stop();
    // Leaves announced by the drained connections go out before the node withdraws.
    await Promise.race([Promise.allSettled([...this.pending]), new Promise((r) => setTimeout(r, 2000))]);
    if (this.cmdUp) {
      await this.cmd
        .multi()
        .del(KEYS.heartbeat(this.node))
        .srem(KEYS.nodes, this.node)
        .del(KEYS.nodeClients(this.node))
        .exec()
        .catch((err: Error) => this.log.warn({ err: err.message }, 'could not withdraw the node'));
    }
    this.cmd.disconnect();
    this.bus.disconnect();
  }

  health(): 'ok' | 'degraded' {
    return this.cmdUp && this.busUp && this.mastersDown === 0 && !this.hung ? 'ok' : 'degraded';
  }

  /**
   * A command timed out on an open connection: Redis is hung (SIGSTOP, a blackholed network, a long blocking
   * command) rather than gone, which closes no connection. Degraded until a tick gets an answer again.
   */
  private noteTimeout(err: unknown): void {
    if (!/Command timed out/i.test(String((err as Error)?.message ?? err)) || this.hung) return;
    this.hung = true;
    this.log.warn({ timeoutMs: this.cluster.commandTimeoutMs ?? 3000 }, 'redis does not answer (command timed out): degraded');
  }

  /**
   * On a Redis Cluster, the masters of the slot table (CLUSTER SLOTS, asked of any node) that do not answer a PING
   * within a tick, or that ioredis holds no connection to (it drops a dead node's): while there are any, the topics
   * on their slots answer `unavailable`, and the node reports itself degraded until a replica takes over (the slot
   * table then names it) or the master is back.
   */
  private async checkMasters(): Promise<void> {
    if (!(this.cmd instanceof Cluster)) return;
    const table = await this.cmd.cluster('SLOTS').catch(() => undefined);
    if (!table) return; // that node did not answer: the next tick asks another
    const pool = new Map(this.cmd.nodes('master').map((n) => [`${n.options.host}:${n.options.port}`, n]));
    // Each range: start, end, then its nodes, the master first ([host, port, id, …]).
    const masters = new Set(table.map((range) => range[2]).filter((m) => m !== undefined).map((m) => `${m[0]}:${m[1]}`));
    const answers = await Promise.all(
      [...masters].map((address) => {
        const node = pool.get(address);
        if (!node) return false;
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.min(1000, this.tickMs))));
        return Promise.race([node.ping().then(() => true, () => false), late]).finally(() => clearTimeout(timer));
      }),
    );
    const down = answers.filter((ok) => !ok).length;
    if (down > 0 && this.mastersDown === 0) this.log.warn({ masters: down }, 'Redis Cluster: a master does not answer (its topics answer unavailable): degraded');
    if (down === 0 && this.mastersDown > 0) this.log.info('Redis Cluster: every master answers again');
    this.mastersDown = down;
  }



  override get life(): string {
    return this.lifeId;
  }

  private down(role: string): void {
    const was = this.cmdUp && this.busUp;
    if (role === 'commands') this.cmdUp = false;
    else this.busUp = false;
    if (was && !this.closed) this.log.warn({ role }, 'redis unreachable: degraded (publishes answer unavailable)');
    if (role === 'subscriber') this.releaseBarrier();
  }

  /** The command connection is (back) up: learn the life, reserve ids, re-assert this node and its clients. */
  private async cmdReady(): Promise<void> {
    if (this.closed || this.initing) return;
    this.initing = true;
    try {
      const fresh = shortId(6);
      // The id counter is put back at least past every id this node reserved (Redis may have lost it): none is given twice.
      const reserved = Math.max(this.ids.highest, this.ids.end, this.ids.spare?.end ?? 0);
      const life = (await this.script(LUA.INIT, [KEYS.life, KEYS.ids], [fresh, String(reserved)])) as string;
      const lost = this.lifeId !== '' && life !== this.lifeId;
      if (lost) {
        this.log.warn({ was: this.lifeId, life }, 'Redis lost its data: new life (resumes answer recovered: false)');
        this.knownTopics.clear();
      }
      this.lifeId = life;
      if (this.ids.next > this.ids.end) await this.reserveIds();
      await this.reassert(lost);
      this.cmdUp = true;
      if (this.everUp) this.log.info({ life }, 'redis reachable again: node re-asserted');
      this.everUp ||= this.busUp;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'redis initialisation failed; retrying');
      setTimeout(() => void (this.cmd.status === 'ready' && this.cmdReady()), 500).unref();
    } finally {
      this.initing = false;
    }
  }

  /** The subscriber is (back) up: anything published while it was away is fetched from the streams, in order. */
  private busReady(): void {
    if (this.closed) return;
    this.busUp = true;
    this.everUp ||= this.cmdUp;
    for (const [topic, c] of this.cursors) if (!c.filling) void this.fill(topic, c);
  }

  /**
   * Re-asserts this node and its clients, then settles the presence events of the time it was away: when it had
   * been taken for dead (reaped, or Redis lost it), every node heard its clients end (`timeout`), so each is
   * announced again (`join` per filter) and the held events, older than that, are dropped; otherwise the held
   * events go out in the order they happened. When Redis lost its data (`lost`) nobody was reaped or announced.
   */
  private async reassert(lost = false): Promise<void> {
    const life = this.lifeId;
    const args = [this.node, String(this.nodeTtlMs)];
    for (const s of this.registry.values()) args.push(s.id, JSON.stringify(this.record(s)));
    const [gone, ...conflicts] = (await this.script(LUA.REASSERT, [KEYS.nodes, KEYS.heartbeat(this.node), KEYS.clients, KEYS.names, KEYS.nodeClients(this.node)], args)) as [number, ...string[]];
    for (const id of conflicts) this.log.warn({ client: id }, 'while Redis was unreachable another node gave this client\'s name away; it keeps it locally');
    if (gone === 1 && !lost && this.registry.size > 0 && (await this.cmd.get(KEYS.life).catch(() => life)) !== life) {
      // Not reaped: Redis lost its data while this node stayed connected (a flushed Redis, a Redis Cluster restarted),
      // so nobody announced its clients' end. It initialises again, as tick() may be doing (no `join` again).
      if (this.lifeId === life) void this.cmdReady();
      return;
    }
    if (gone === 1 && !lost && this.registry.size > 0) {
      const held = this.heldPresence.splice(0).length;
      this.heldBy.clear();
      let joins = 0;
      for (const s of this.registry.values()) {
        for (const filter of s.subscriptions) {
          this.publishPresence('join', { id: s.id, name: s.name, transport: s.transport, addr: s.addr }, filter);
          joins++;
        }
      }
      this.log.warn({ clients: this.registry.size, joins, heldDropped: held + this.presenceDropped }, 'this node had been taken for dead: its clients announced again');
      this.presenceDropped = 0;
    } else this.flushPresence();
  }

  /** Presence events held while Redis could not be reached, published in order now that it can. */
  private flushPresence(): void {
    if (this.presenceDropped > 0) this.log.warn({ dropped: this.presenceDropped, limit: MAX_HELD_PRESENCE, perClient: MAX_HELD_PRESENCE_PER_CLIENT }, 'presence events lost: more were held while Redis was unreachable than the limits (in all, or per client)');
    this.presenceDropped = 0;
    if (this.heldPresence.length === 0) return;
    const held = this.heldPresence.splice(0);
    this.heldBy.clear();
    const pipe = this.cmd.pipeline();
    for (const payload of held) {
      // On a Redis Cluster through the `{g}` shard, like every presence event (relay()); one pipeline: one node.
      if (this.cmd instanceof Cluster) pipe.eval(LUA.RELAY, 1, KEYS.heartbeat(this.node), CHANNELS.bus, payload, '0');
      else pipe.publish(CHANNELS.bus, payload);
    }
    pipe.exec().catch((err: Error) => this.log.info({ err: err.message, events: held.length }, 'held presence events lost: Redis unreachable again'));
    this.log.info({ events: held.length }, 'presence events held while Redis was unreachable: published');
  }

  /** Heartbeat, and the claim on nodes whose heartbeat expired. */
  /**
   * Every tick, in one round trip (all `{g}` keys): the heartbeat, the node set (is this node still in it? which
   * others might be dead?) and the life. Redis can lose its data without the command connection closing (a Redis
   * Cluster stays `ready` while a shard restarts, a flushed Redis says nothing): a life that changed makes the node
   * initialise again as after a reconnect (the new life, the id counter, its clients re-asserted).
   */
  private async tick(): Promise<void> {
    if (!this.cmdUp || this.closed) return;
    await this.checkMasters();
    try {
      const [, [, nodes], [, life]] = (await this.cmd
        .multi()
        .set(KEYS.heartbeat(this.node), '1', 'PX', this.nodeTtlMs)
        .smembers(KEYS.nodes)
        .get(KEYS.life)
        .exec()) as [unknown, [unknown, string[]], [unknown, string | null]];
      if (this.hung) {
        this.hung = false;
        this.log.info('redis answers again');
      }
      if (life !== this.lifeId) {
        if (!this.initing) await this.cmdReady();
        return;
      }
      if (!nodes.includes(this.node)) {
        // Another node took this one for dead (unreachable, or stuck, for too long): come back.
        this.log.warn('this node was reaped by another; re-asserting its clients');
        await this.reassert();
      } else if (this.heldPresence.length > 0 || this.presenceDropped > 0) this.flushPresence();
      for (const n of nodes) {
        if (n === this.node) continue;
        const count = (await this.script(LUA.REAP, [KEYS.nodes, KEYS.heartbeat(n), KEYS.clients, KEYS.names, KEYS.nodeClients(n)], [n, CHANNELS.bus])) as number;
        if (count >= 0) this.log.warn({ dead: n, clients: count }, 'node gone (heartbeat expired): its clients timed out');
      }
    } catch (err) {
      this.noteTimeout(err);
      this.log.debug({ err: (err as Error).message }, 'cluster tick failed');
    }
  }

  // ---- ids ------------------------------------------------------------------------------------------------------

  nextSessionId(): string {
    const ids = this.ids;
    if (ids.next > ids.end && ids.spare) {
      ids.next = ids.spare.next;
      ids.end = ids.spare.end;
      ids.spare = undefined;
    }
    if (ids.next > ids.end) {
      // Only when Redis was unreachable for longer than a block lasts: ids may then repeat another node's.
      this.log.error('client id block exhausted while Redis is unreachable');
      ids.end = ids.next;
    }
    const n = ids.next++;
    ids.highest = Math.max(ids.highest, n);
    if (!ids.spare && !ids.refilling && ids.end - ids.next < ID_BLOCK / 2) void this.refillIds();
    return `c${n}`;
  }

  private async reserveIds(): Promise<void> {
    const end = await this.cmd.incrby(KEYS.ids, ID_BLOCK);
    this.ids.next = end - ID_BLOCK + 1;
    this.ids.end = end;
  }

  private async refillIds(): Promise<void> {
    this.ids.refilling = true;
    try {
      const end = await this.cmd.incrby(KEYS.ids, ID_BLOCK);
      this.ids.spare = { next: end - ID_BLOCK + 1, end };
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'id block reservation failed; retried later');
    } finally {
      this.ids.refilling = false;
    }
  }

  // ---- Redis plumbing -------------------------------------------------------------------------------------------

  /**
   * Runs a Lua script by its SHA once Redis has it, keeping calls in the order they were made. Pipelined EVALSHAs
   * that meet NOSCRIPT (a fresh Redis, a restart, SCRIPT FLUSH) are retried as EVAL; until every EVALSHA sent before
   * has its answer (and its retry is sent), new calls wait, then go as EVAL: otherwise a later call would overtake a
   * retried one and one publisher's messages would be numbered out of order.
   */
  private async script(lua: string, keys: string[], args: string[]): Promise<unknown> {
    if (this.scriptGate) await this.scriptGate.promise;
    let sha = this.shas.get(lua);
    if (!sha) this.shas.set(lua, (sha = createHash('sha1').update(lua).digest('hex')));
    if (!this.loadedScripts.has(sha)) {
      const reply = await this.cmd.eval(lua, keys.length, ...keys, ...args);
      // Loaded for good only when no EVALSHA (whose retry could still be sent after this) is out.
      if (this.shaPending === 0) this.loadedScripts.add(sha);
      return reply;
    }
    this.shaPending++;
    let retry: Promise<unknown> | undefined;
    try {
      return await this.cmd.evalsha(sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!String((err as Error).message).includes('NOSCRIPT')) throw err;
      this.loadedScripts.clear();
      if (!this.scriptGate) {
        let open = () => {};
        this.scriptGate = { promise: new Promise<void>((r) => (open = r)), open: () => open() };
      }
      retry = this.cmd.eval(lua, keys.length, ...keys, ...args);
    } finally {
      if (--this.shaPending === 0 && this.scriptGate) {
        this.scriptGate.open();
        this.scriptGate = undefined;
      }
    }
    return await retry;
  }

  /** Queues `op` after the session's earlier requests; at most maxInflight requests wait on Redis per node. */
  private enqueue(session: S, op: () => Promise<void> | void, id?: FrameId, counted = true, isPub = false): void {
    if (counted && this.inflight >= this.cluster.maxInflight) {
      const err = new ProtocolError('unavailable', `over ${this.cluster.maxInflight} requests waiting on Redis; retry later`, id);
      op = () => this.fail(session, err);
      counted = false;
    }
    if (counted) this.inflight++;
    if (!isPub) this.others.set(session, (this.others.get(session) ?? 0) + 1);
    const prev = this.chains.get(session) ?? Promise.resolve();
    const next: Promise<void> = prev
      .then(op)
      .catch((err: unknown) => {
        const refused = refusal(err, id);
        if (refused) return this.fail(session, refused);
        this.log.error({ err, client: session.id }, 'cluster engine fault while handling a request');
        this.fail(session, new ProtocolError('internal', 'internal error', id));
      })
      .finally(() => {
        if (counted) this.inflight--;
        if (!isPub) this.others.set(session, this.others.get(session)! - 1);
        this.pending.delete(next);
      });
    this.pending.add(next);
    this.chains.set(session, next);
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
    if (!this.cmdUp) return true;
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
    const subject = { id: link.id, name: link.name, transport: link.transport, addr: link.addr };
    this.enqueue(
      link,
      async () => {
        for (const filter of filters) this.publishPresence(cause, subject, filter);
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
        if ((this.others.get(link) ?? 0) > 0 || this.inflight >= this.cluster.maxInflight) return this.enqueue(link, () => this.pubAsync(link, frame), frame.id);
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
        await this.barrier();
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
        this.ack(link, frame.id, { life: this.lifeId });
      } else if (!(await this.resumeFromStreams(link, frame))) {
        if (added) {
          link.subscriptions.delete(frame.topic);
          this.index.remove(frame.topic, link);
          this.presence.unwatch(frame.topic, link);
          link.presence.delete(frame.topic);
          this.roster.subscriptionChanged(frame.topic);
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
    if (link.subscriptions.delete(frame.topic)) {
      this.roster.subscriptionChanged(frame.topic);
      this.index.remove(frame.topic, link);
      this.chargeInvalidation(link);
      this.presence.unwatch(frame.topic, link);
      link.presence.delete(frame.topic);
      await this.mirror(link);
      this.announce('leave', link, frame.topic);
    }
    this.ack(link, frame.id);
  }

  private async pubAsync(link: S, frame: FrameOf<'pub'>): Promise<void> {
    this.pubAnswer(link, frame, await this.pubStart(link, frame));
  }

  private pubStart(link: S, frame: FrameOf<'pub'>): Promise<PublishResult | ProtocolError> {
    if (link.grant && !link.grant.mayPublish(frame.topic)) {
      return Promise.resolve(new ProtocolError('forbidden', `the token does not allow publishing to '${frame.topic}'`, frame.id));
    }
    return this.publishVia(frame.topic, frame.data, link, frame.echo !== false, frame.id, frame.key, frame.qos);
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
  private async publishVia(topic: string, data: unknown, from: S | null, echo: boolean, id?: FrameId, key?: string, qos?: 0 | 1 | 2): Promise<PublishResult | ProtocolError> {
    const encoded = encodeData(data, id);
    if (encoded instanceof ProtocolError) return encoded;
    if (!this.cmdUp) return unavailable(id);
    const head = `{"op":"msg","topic":${JSON.stringify(topic)},"seq":`;
    const sender = from ? `,"from":${JSON.stringify({ id: from.id, name: from.name })}` : '';
    const tail = `${sender},"ts":${Date.now()},"data":${encoded.json}}`;
    // The transport field carries an MQTT publisher's QoS below 2 as `mqtt:<qos>` (older entries have none: 2).
    const transport = qos === undefined || qos === 2 ? (from?.transport ?? '') : `${from?.transport ?? ''}:${qos}`;
    const prefix = `m${this.node}\n${transport}\n${from?.addr ?? ''}\n${from && !echo ? from.id : ''}\n`;
    if (!this.knownTopics.has(topic)) {
      // Sent before the script on the same connection: a topic is listed before its first message exists.
      const listed = this.cmd
        .sadd(KEYS.topics, topic)
        .then(() => this.knownTopics.size < MAX_CURSORS && this.knownTopics.add(topic))
        .catch(() => undefined);
      // On a Redis Cluster the set (`{g}`) and the topic live on different shards, one connection each: waited for.
      if (this.cmd instanceof Cluster) await listed;
    }
    const fresh = `${this.lifeId}.${this.node}${(++this.epochs).toString(36)}`;
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
      this.noteTimeout(err);
      return refused;
    }
    const [seq, epoch, duplicate] = reply;
    if (duplicate) return duplicateOf({ seq, epoch });
    this.stats.published++;
    const delivered = heard ? await this.ownDelivery(`${topic}\u0000${epoch}\u0000${seq}`) : 0;
    return { seq, epoch, delivered };
  }

  private ownDelivery(key: string): Promise<number> {
    const known = this.own.get(key);
    if (typeof known === 'number') {
      this.own.delete(key);
      return Promise.resolve(known);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // The bus lost it (the subscriber reconnects and fills from the stream): the publish itself stands.
        this.own.delete(key);
        resolve(0);
      }, OWN_DELIVERY_WAIT_MS);
      this.own.set(key, (n) => {
        clearTimeout(timer);
        resolve(n);
      });
    });
  }

  private async sendAsync(link: S, frame: FrameOf<'send'>): Promise<void> {
    const local = this.registry.find(frame.to);
    let target: { id: string; name: string; node: string } | undefined = local && { id: local.id, name: local.name, node: this.node };
    if (!target) {
      if (!this.cmdUp) return this.fail(link, unavailable(frame.id));
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
    if (!this.cmdUp) return this.fail(link, unavailable(frame.id));
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
    if (!this.cmdUp) return this.fail(link, unavailable(frame.id));
    if (!(await this.claimName(link, frame.name, old))) return this.fail(link, new ProtocolError('name_taken', `name '${frame.name}' is taken`, frame.id));
    this.registry.rename(link, frame.name);
    this.roster.clientChanged(link.subscriptions);
    this.ack(link, frame.id, { name: link.name });
    for (const filter of link.subscriptions) this.announce('rename', link, filter, old);
  }

  // ---- resume ---------------------------------------------------------------------------------------------------

  /** Answers a `sub` with a position from the topics' streams; false when Redis could not answer (then: unavailable). */
  private async resumeFromStreams(link: S, frame: FrameOf<'sub'>): Promise<boolean> {
    try {
      if (!this.cmdUp) {
        this.fail(link, unavailable(frame.id));
        return false;
      }
      const { seen: seenOf, anchored, maxMessages, maxBytes } = this.resumeTerms(link, frame, this.lifeId);
      const budget = { messages: maxMessages, bytes: maxBytes };
      const wildcard = isWildcard(frame.topic);
      // Maps: topics are client input (`__proto__`, `toString` are topics like any).
      const positions = new Map<string, Position>();
      const missed = new Map<string, MissReason>();
      const messages: Outgoing[] = [];
      let truncated = false;
      let topics = [frame.topic];
      if (wildcard) {
        topics = (await this.cmd.smembers(KEYS.topics)).filter((t) => filterMatches(frame.topic, t)).sort();
        if (topics.length > MAX_POSITIONS) {
          truncated = true;
          topics = topics.slice(0, MAX_POSITIONS);
        }
        if (!anchored || truncated) missed.set(frame.topic, truncated ? 'replay_limit' : 'unknown_position');
      }
      const reads = await Promise.all(
        topics.map((t) => {
          const from = seenOf(t).seq + 1;
          return this.script(LUA.READ, [KEYS.meta(t), KEYS.log(t), KEYS.sizes(t)], [String(from), String(budget.messages + 1)]) as Promise<(string | null)[]>;
        }),
      );
      topics.forEach((topic, i) => {
        const [seqText, ep, ...flat] = reads[i]!;
        const seen = seenOf(topic);
        if (seqText === null || seqText === undefined || ep === null || ep === undefined) {
          // Listed without data: Redis lost it. A position on it is answered by the `since` loop below.
          if (wildcard && !seen.listed) missed.set(topic, 'unknown_position');
          else if (!wildcard && seen.seq > 0) missed.set(topic, 'unknown_position');
          return;
        }
        const position = { seq: Number(seqText), epoch: ep };
        positions.set(topic, position);
        if (wildcard && !seen.listed && !anchored) {
          missed.set(topic, 'unknown_position');
          return;
        }
        if (seen.seq > 0 && seen.epoch !== position.epoch) {
          missed.set(topic, seen.epoch === undefined ? 'unknown_position' : 'epoch_changed');
          return;
        }
        if (seen.seq > position.seq) {
          missed.set(topic, 'unknown_position');
          return;
        }
        if (seen.seq === position.seq) return;
        const n = position.seq - seen.seq;
        const entries: BusMessage[] = [];
        for (let k = 0; k < flat.length; k += 2) {
          const m = parseBusMessage(flat[k + 1]!.slice(1));
          if (m) entries.push(m);
        }
        // Replayable: the stream still holds seen+1 onwards, within --history of the last seq.
        const oldestKept = Math.max(entries[0]?.seq ?? position.seq + 1, position.seq - this.options.historySize + 1);
        if (oldestKept > seen.seq + 1) {
          missed.set(topic, 'history_trimmed');
          return;
        }
        if (n > budget.messages || entries.length < n) {
          missed.set(topic, 'replay_limit');
          return;
        }
        const replay = entries.slice(0, n);
        const bytes = replay.reduce((sum, m) => sum + m.out.bytes, 0);
        if (bytes > budget.bytes) {
          missed.set(topic, 'replay_limit');
          return;
        }
        budget.messages -= n;
        budget.bytes -= bytes;
        for (const m of replay) messages.push(m.out);
      });
      // Always answered, as on one node: a `sub` with `since` asked for its verdict, with or without an id.
      link.send(ackFrame(frame.id, this.resumeVerdict(frame, positions, missed, truncated, this.lifeId)));
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
          if (m) this.onMessage(m);
          return;
        }
        case 'p': {
          const p = JSON.parse(payload.slice(1)) as { e: PresenceEvent; c: { id: string; name: string; transport: Transport; addr: string }; f: string; o?: string };
          super.announce(p.e, new RemoteClient(p.c) as unknown as S, p.f, p.o);
          return;
        }
        case 'd':
          return this.onDirect(payload.slice(1));
        case 'b':
          if (channel === CHANNELS.node(this.node)) this.barrierArrived(Number(payload.slice(1)));
          return;
      }
    } catch (err) {
      this.log.error({ err, channel }, 'bad bus message');
    }
  }

  /** Per topic in seq order: the next seq is delivered, a later one is held while the gap is fetched from the stream. */
  private onMessage(m: BusMessage): void {
    let c = this.cursors.get(m.topic);
    if (!c || c.epoch !== m.epoch) {
      if (this.cursors.size >= MAX_CURSORS) this.trimCursors();
      c = { epoch: m.epoch, seq: m.seq - 1, held: new Map(), filling: false };
      this.cursors.set(m.topic, c);
    }
    if (m.seq <= c.seq) return; // already delivered (a fill and the bus both brought it)
    if (m.seq === c.seq + 1 && !c.filling) {
      this.deliver(m);
      c.seq = m.seq;
      this.drain(c);
      return;
    }
    c.held.set(m.seq, m);
    if (c.held.size > MAX_HELD) this.skipTo(m.topic, c, Math.min(...c.held.keys()));
    if (!c.filling) void this.fill(m.topic, c);
  }

  private drain(c: Cursor): void {
    for (let next = c.held.get(c.seq + 1); next; next = c.held.get(c.seq + 1)) {
      c.held.delete(next.seq);
      this.deliver(next);
      c.seq = next.seq;
    }
  }

  /** A gap the stream could not fill (trimmed before this node caught up): said loudly, then passed. */
  private skipTo(topic: string, c: Cursor, seq: number): void {
    this.gapsSkipped += seq - c.seq - 1;
    this.log.warn({ topic, from: c.seq + 1, to: seq - 1 }, 'messages lost to this node: the stream no longer holds them');
    c.seq = seq - 1;
    this.drain(c);
  }

  /** Fetches what this node missed of `topic` after its cursor (up to the first held message, or the stream's end). */
  private async fill(topic: string, c: Cursor): Promise<void> {
    c.filling = true;
    try {
      for (;;) {
        if (this.cursors.get(topic) !== c || this.closed) return;
        const firstHeld = c.held.size > 0 ? Math.min(...c.held.keys()) : Infinity;
        const want = firstHeld === Infinity ? 1000 : Math.min(1000, firstHeld - c.seq - 1);
        if (want <= 0) {
          this.drain(c);
          if (c.held.size === 0) return;
          continue;
        }
        const reply = (await this.script(LUA.READ, [KEYS.meta(topic), KEYS.log(topic), KEYS.sizes(topic)], [String(c.seq + 1), String(want)])) as (string | null)[];
        const [, ep, ...flat] = reply;
        let got = 0;
        for (let k = 0; k < flat.length; k += 2) {
          const m = parseBusMessage(flat[k + 1]!.slice(1));
          if (!m || m.epoch !== c.epoch || m.seq <= c.seq) continue;
          if (m.seq > c.seq + 1) this.skipTo(topic, c, m.seq);
          this.deliver(m);
          c.seq = m.seq;
          got++;
        }
        this.drain(c);
        if (c.held.size === 0) {
          if (got < want || ep !== c.epoch) return;
          continue; // more may follow
        }
        if (got === 0) this.skipTo(topic, c, Math.min(...c.held.keys()));
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message, topic }, 'gap fill failed; retrying');
      setTimeout(() => this.cursors.get(topic) === c && !c.filling && void this.fill(topic, c), 500).unref();
    } finally {
      c.filling = false;
    }
  }

  private trimCursors(): void {
    for (const [topic, c] of this.cursors) if (c.held.size === 0 && !c.filling) this.cursors.delete(topic);
  }

  /** One message to every matching local subscriber, once each. */
  private deliver(m: BusMessage): void {
    const subscribers = this.index.match(m.topic);
    let delivered = 0;
    for (let i = 0; i < subscribers.length; i++) {
      const s = subscribers[i]!;
      if (m.noEcho !== '' && s.id === m.noEcho) continue;
      const buffer = this.resuming.get(s);
      if (buffer) {
        buffer.push(m);
        delivered++;
      } else if (this.pushLive(s, m)) delivered++;
    }
    this.stats.delivered += delivered;
    if (m.node === this.node) {
      const key = `${m.topic}\u0000${m.epoch}\u0000${m.seq}`;
      const waiter = this.own.get(key);
      if (typeof waiter === 'function') {
        this.own.delete(key);
        waiter(delivered);
      } else {
        // Bounded without dropping a publisher waiting for its count: the oldest count nobody claimed makes room.
        if (this.own.size > 10_000) {
          for (const [k, v] of this.own) {
            if (typeof v !== 'number') continue;
            this.own.delete(k);
            break;
          }
        }
        this.own.set(key, delivered);
      }
    }
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
    this.publishPresence(event, { id: subject.id, name: subject.name, transport: subject.transport, addr: subject.addr }, filter, old);
  }

  /**
   * Presence goes on the bus. While Redis cannot be reached the event is held (bounded) and published when it
   * can, in order; an event whose PUBLISH was sent but not answered is not sent again (it may have gone out: no
   * duplicate), it is logged as possibly lost.
   */
  private publishPresence(event: PresenceEvent, c: { id: string; name: string; transport: Transport; addr: string }, filter: string, old?: string): void {
    const body: Record<string, unknown> = { e: event, c, f: filter };
    if (old !== undefined) body.o = old;
    const payload = 'p' + JSON.stringify(body);
    if (!this.cmdUp || this.heldPresence.length > 0) return this.holdPresence(payload, c.id);
    this.relay(CHANNELS.bus, payload).catch((err: Error) => {
      // Not connected: nothing was sent (no offline queue), so holding it cannot double it.
      if (/Stream isn't writeable|enableOfflineQueue/i.test(err.message)) this.holdPresence(payload, c.id);
      else this.log.info({ err: err.message, event, client: c.id, filter }, 'presence event may be lost: Redis did not answer');
    });
  }

  private holdPresence(payload: string, client: string): void {
    const mine = this.heldBy.get(client) ?? 0;
    if (this.heldPresence.length >= MAX_HELD_PRESENCE || mine >= MAX_HELD_PRESENCE_PER_CLIENT) {
      this.presenceDropped++;
      return;
    }
    this.heldPresence.push(payload);
    this.heldBy.set(client, mine + 1);
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

  /**
   * Resolves once everything Redis published before now has reached this node: a token sent to this node's own
   * channel comes back after them (one subscriber connection delivers in Redis's order). Pings share tokens.
   * On a Redis Cluster there is no one order: each master forwards its PUBLISHes to the subscriber's node over its
   * own cluster-bus link, in its order, so the token goes through every master and the barrier waits for all of them
   * (a master that cannot take it publishes nothing meanwhile; the wait is bounded by BARRIER_WAIT_MS anyway).
   */
  private barrier(): Promise<void> {
    if (!this.cmdUp || !this.busUp) return Promise.resolve();
    return new Promise((resolve) => {
      this.barrierBatch.push(resolve);
      this.sendBarrier();
    });
  }

  private sendBarrier(): void {
    if (this.barrierInFlight || this.barrierBatch.length === 0) return;
    const batch = this.barrierBatch;
    this.barrierBatch = [];
    const token = ++this.barrierToken;
    const timer = setTimeout(() => this.releaseBarrier(), BARRIER_WAIT_MS);
    const via: (Redis | Cluster)[] = this.cmd instanceof Cluster ? this.cmd.nodes('master') : [this.cmd];
    this.barrierInFlight = {
      token,
      waiting: via.length,
      resolve: () => {
        clearTimeout(timer);
        for (const r of batch) r();
      },
    };
    if (via.length === 0) return this.releaseBarrier();
    for (const conn of via) conn.publish(CHANNELS.node(this.node), `b${token}`).catch(() => this.barrierArrived(token));
  }

  /** One of the current barrier's tokens came back (or could not be sent): released when none is outstanding. */
  private barrierArrived(token: number): void {
    const b = this.barrierInFlight;
    if (b?.token === token && --b.waiting <= 0) this.releaseBarrier();
  }

  private releaseBarrier(): void {
    const b = this.barrierInFlight;
    this.barrierInFlight = undefined;
    b?.resolve();
    if (this.barrierBatch.length > 0) {
      if (this.cmdUp && this.busUp) this.sendBarrier();
      else for (const r of this.barrierBatch.splice(0)) r();
    }
  }
}

/** `<node>\n<transport>\n<addr>\n<noEcho>\n<frame JSON>` → a message, encoded once for every local subscriber. */
function parseBusMessage(body: string): BusMessage | undefined {
  let at = 0;
  const parts: string[] = [];
  for (let i = 0; i < 4; i++) {
    const nl = body.indexOf('\n', at);
    if (nl < 0) return undefined;
    parts.push(body.slice(at, nl));
    at = nl + 1;
  }
  const json = body.slice(at);
  const frame = JSON.parse(json) as ServerFrame & { op: 'msg'; topic: string; seq: number; epoch: string; from?: { id: string; name: string } };
  const [node, carried, addr, noEcho] = parts as [string, string, string, string];
  const colon = carried.indexOf(':');
  const transport = colon < 0 ? carried : carried.slice(0, colon);
  const sender: ClientInfo | undefined = frame.from ? { id: frame.from.id, name: frame.from.name, addr, transport: (transport || 'ws') as Transport } : undefined;
  const out = Outgoing.prebuilt(frame, json, Buffer.byteLength(json), sender);
  if (colon >= 0) out.maxQos = carried.slice(colon + 1) === '0' ? 0 : 1;
  return { topic: frame.topic, seq: frame.seq, epoch: frame.epoch, node, noEcho, out };
}

/**
 * Errors that mean "Redis cannot answer now" (not connected, timed out, loading; on a Redis Cluster also a shard
 * down, slots moving, the cluster not ready): the client gets `unavailable`. CROSSSLOT is not one of them (a bug).
 */
export function isRedisDown(err: unknown): boolean {
  const msg = String((err as Error)?.message ?? err);
  return /Stream isn't writeable|Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|LOADING|enableOfflineQueue|max retries|ETIMEDOUT|EPIPE|Reached the max retries|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes is available|Cluster isn't ready/i.test(msg);
}

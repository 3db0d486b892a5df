// RedisNode: this process as a member of the cluster. It owns the two Redis connections (commands, subscriber), the
// cluster's life, the heartbeat (a thread of its own) and the tick that reaps dead nodes, and says whether the node
// is healthy. When the command connection comes (back) up it learns the life, reserves ids and re-asserts this node
// and its clients (the engine says which); the engine hears of the subscriber and of what arrives on it.
import { randomBytes } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import type { Logger } from 'pino';
import { HeartbeatThread } from './heartbeat.js';
import { heartbeatConnect, redisConnections, type ClusterSubscriber, type PlainSubscriber } from './connections.js';
import { redactRedisUrl } from '../../redis-url.js';
import { CHANNELS, KEYS, PARTITIONS } from './keys.js';
import * as LUA from './scripts.js';
import { IdBlocks } from './id-blocks.js';
import { ShardSubscribers } from './shards.js';
import { keySlot, Reach, sendWritten } from './outcome.js';
import { ScriptRunner } from './script-runner.js';
import { Reaper } from './reaper.js';
import type { BrokerStats } from '../stats.js';

export interface RedisNodeOptions {
  /** redis://host:port[/db], rediss://…, or redis+cluster://host:port,host:port,… (a Redis Cluster's seed nodes) */
  url: string;
  log: Logger;
  /** Heartbeat key TTL; the node counts as dead this long after its last refresh. */
  nodeTtlMs?: number;
  /** How often the heartbeat is refreshed and dead nodes are looked for. */
  tickMs?: number;
  /** How long the main event loop may be stuck before the heartbeat thread stops refreshing (heartbeat.ts). */
  nodeHangMs?: number;
  /** How long start() waits for Redis. */
  connectTimeoutMs?: number;
  /** How long a Redis command may take before it fails (a publish then answers outcome_unknown, the node is degraded). */
  commandTimeoutMs?: number;
  /** Where the reaper counts its finished passes and the nodes it reaped (reaper.ts). */
  stats?: Pick<BrokerStats, 'clusterReaperPasses' | 'clusterNodesReaped'> | undefined;
}

/** What the node asks of the engine on it. */
export interface NodeMembers {
  /** How many clients this node holds. */
  count(): number;
  /** Each client of this node: its id and its record's JSON (what other nodes see). */
  records(): [id: string, json: string][];
  /** Re-asserted: `takenForDead` when every node had heard this node's clients end (they are announced again). */
  reasserted(takenForDead: boolean): void;
  /** A tick found this node in place. */
  ticked(): void;
  /** Redis lost its data: a new life. */
  lifeLost(): void;
  /** The subscriber connection is (back) up, or went down. */
  subscriber(up: boolean): void;
  /** A message on one of the subscriber's channels. */
  message(channel: string, payload: string): void;
}

function shortId(bytes: number): string {
  return randomBytes(bytes).readUIntBE(0, bytes).toString(36).padStart(8, '0').slice(-8);
}

/**
 * What a life is (shortId(6)). A reply to INIT that is not one is not taken for the life: once, on a Redis Cluster
 * whose master had just been killed, a life of "PONG" was (another command's reply: how it crossed over is not
 * known), and every epoch this node then minted carried it.
 */
const LIFE = /^[0-9a-z]{8}$/;

export class RedisNode {
  /** This process's id in the cluster (heartbeat key, node channel, epochs it creates). */
  readonly id = randomBytes(3).toString('hex');
  readonly cmd: Redis | Cluster;
  /** Publish calls go out only on a ready connection to their master, in the order made (outcome.ts). */
  readonly reach: Reach;
  readonly bus: PlainSubscriber | ClusterSubscriber;
  /** On a Redis Cluster: the sharded subscriber connections, one per master (messages' channels, shards.ts). */
  readonly shards: ShardSubscribers | undefined;
  readonly log: Logger;
  readonly scripts: ScriptRunner;
  /** The publish script's calls (publishScript). */
  private readonly publishScripts: ScriptRunner;
  readonly ids: IdBlocks;
  private lifeId = '';
  /** Connected and initialised (life known, node registered). */
  private cmdUp = false;
  private busUp = false;
  private everUp = false;
  private stopped = false;
  /** A command timed out and no tick has been answered since (Redis hung, not disconnected). */
  private hung = false;
  /** Redis Cluster masters that did not answer at the last tick (0 on one Redis). */
  private mastersDown = 0;
  /** cmdReady is running. */
  private initing = false;
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: HeartbeatThread | undefined;
  private readonly nodeTtlMs: number;
  private readonly tickMs: number;
  private members!: NodeMembers;
  /** Each tick's pass over the node set: dead nodes claimed and their clients announced `timeout`. */
  private readonly reaper: Reaper;

  constructor(private readonly options: RedisNodeOptions) {
    this.log = options.log.child({ engine: 'redis', node: this.id });
    this.nodeTtlMs = options.nodeTtlMs ?? 5000;
    this.tickMs = options.tickMs ?? 1500;
    // One Redis or a Redis Cluster (connections.ts); commands fail at once while disconnected (no offline queue).
    // Through Sentinel, the heartbeat thread's connection follows an announced master as the main ones do.
    const conns = redisConnections(options.url, `sb-${this.id}`, options.commandTimeoutMs ?? 3000, () => this.heartbeat?.moved());
    this.cmd = conns.cmd;
    this.reach = new Reach(this.cmd, options.commandTimeoutMs ?? 3000);
    this.bus = conns.bus;
    this.shards =
      this.cmd instanceof Cluster && conns.sharded
        ? new ShardSubscribers(this.cmd, conns.sharded, {
            message: (channel, payload) => this.members.message(channel, payload),
            // A shard's subscriptions are live again: what it published meanwhile is fetched from the streams.
            ready: () => !this.stopped && this.members.subscriber(true),
            down: () => !this.stopped && this.members.subscriber(false),
            error: (err) => this.log.warn({ role: 'sharded subscriber', err: err.message }, 'redis connection error'),
          })
        : undefined;
    // An ioredis `error` event without a listener would crash the process: both connections always have one.
    for (const [conn, role] of [[this.cmd, 'commands'], [this.bus, 'subscriber']] as const) {
      conn.on('error', (err: Error) => this.log.warn({ role, err: err.message }, 'redis connection error'));
    }
    const cmd = this.cmd;
    const nodeOf = cmd instanceof Cluster ? (key: string) => cmd.slots[keySlot(key)]?.[0] ?? '' : undefined;
    this.scripts = new ScriptRunner(cmd, nodeOf);
    // Publishes as commands that know whether they were written (outcome.ts): what a failure is answered.
    this.publishScripts = new ScriptRunner(
      {
        eval: (lua, n, ...rest) => sendWritten(cmd, 'eval', [lua, n, ...rest]),
        evalsha: (sha, n, ...rest) => sendWritten(cmd, 'evalsha', [sha, n, ...rest]),
      },
      nodeOf,
    );
    // Under the life this node knows only: a reservation that reached a Redis that lost its data (before this node
    // noticed) would restart from an empty counter, below ids the cluster gave.
    this.ids = new IdBlocks(async (n) => (await this.script(LUA.RESERVE_IDS, [KEYS.life, KEYS.ids], [String(n), this.lifeId])) as number, this.log);
    this.reaper = new Reaper({ self: this.id, script: (lua, keys, args) => this.script(lua, keys, args), log: this.log, stats: options.stats });
  }

  /** The cluster's life (docs/protocol.md, Positions): '' until Redis answered once. */
  get life(): string {
    return this.lifeId;
  }

  /** The command connection is up and the node registered: requests can go to Redis. */
  get up(): boolean {
    return this.cmdUp;
  }

  /** The subscriber connection is up. */
  get listening(): boolean {
    return this.busUp;
  }

  get closed(): boolean {
    return this.stopped;
  }

  /** Wires the engine in (before start): the node tells it what it hears and asks it for its clients. */
  attach(members: NodeMembers): void {
    this.members = members;
    this.cmd.on('close', () => {
      this.scripts.forget();
      this.publishScripts.forget();
      this.down('commands');
    });
    this.bus.on('close', () => this.down('subscriber'));
    this.cmd.on('ready', () => void this.cmdReady());
    this.bus.on('ready', () => this.busReady());
    this.bus.on('messageBuffer', (channel: Buffer, message: Buffer) => members.message(channel.toString(), message.toString()));
  }

  /**
   * `listener` hears of each dead node this node reaped (once in the cluster: only the node whose REAP removed it from
   * the node set). Data kept in Redis under a node's id by parts outside the engine (MQTT session holds) is theirs to
   * clear; the node may still come back (it was only unreachable, or stuck), which they may wait for.
   */
  onReaped(listener: (node: string) => void): void {
    this.reaper.onReaped(listener);
  }

  /**
   * Runs a publish script: as script(), each call a command that knows whether it was written, so that a failure
   * tells `unavailable` (never written: NotSent) from `outcome_unknown` (outcome.ts).
   */
  publishScript(lua: string, keys: string[], args: string[], asText?: (args: string[]) => string[]): Promise<unknown> {
    return this.publishScripts.run(lua, keys, args, asText);
  }

  script(lua: string, keys: string[], args: string[]): Promise<unknown> {
    return this.scripts.run(lua, keys, args);
  }

  async start(): Promise<void> {
    const deadline = this.options.connectTimeoutMs ?? 10_000;
    const ready = Promise.all([this.cmd.connect(), this.bus.connect()]);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([ready, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${deadline} ms`)), deadline)))]);
      await this.bus.subscribe(CHANNELS.bus, CHANNELS.node(this.id));
      // Barrier tokens through each shard come back on that shard's sharded connection (barrier.ts).
      await this.shards?.subscribe(...Array.from({ length: PARTITIONS }, (_, k) => CHANNELS.shardBarrier(k, this.id)));
      await this.whenUp(deadline);
    } catch (err) {
      this.stopped = true;
      this.cmd.disconnect();
      this.bus.disconnect();
      this.shards?.disconnect();
      throw new Error(`cannot reach Redis at ${redactRedisUrl(this.options.url)}: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    // A tick that fails is logged, never an unhandled rejection (which ends a Node 20 process).
    this.timer = setInterval(() => void this.tick().catch((err: unknown) => this.log.error({ err }, 'cluster tick failed')), this.tickMs);
    this.timer.unref();
    this.heartbeat = new HeartbeatThread({
      connect: heartbeatConnect(this.options.url),
      key: KEYS.heartbeat(this.id),
      ttlMs: this.nodeTtlMs,
      tickMs: this.tickMs,
      hangMs: Math.max(this.options.nodeHangMs ?? 30_000, this.nodeTtlMs),
      name: `sb-${this.id}-hb`,
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

  /** Stops the tick and the heartbeat, lets `drain` finish, withdraws this node from the cluster, disconnects. */
  async close(drain: () => Promise<void>): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    await this.heartbeat?.stop();
    // Leaves announced by the drained connections go out before the node withdraws.
    await drain();
    if (this.cmdUp) {
      // Its clients whose leave has not run (`drain` gave up on a request before it) end here: a node that withdrew
      // is reaped by nobody, and their records and names would stay in Redis for ever, never announced gone.
      await this.reaper.withdraw().catch((err: Error) => this.log.warn({ err: err.message }, 'could not withdraw the node'));
    }
    this.reach.close();
    this.cmd.disconnect();
    this.bus.disconnect();
    this.shards?.disconnect();
  }

  health(): 'ok' | 'degraded' {
    return this.cmdUp && this.busUp && this.mastersDown === 0 && !this.hung && (this.shards?.ready ?? true) ? 'ok' : 'degraded';
  }

  /**
   * A command timed out on an open connection: Redis is hung (SIGSTOP, a blackholed network, a long blocking
   * command) rather than gone, which closes no connection. Degraded until a tick gets an answer again.
   */
  noteTimeout(err: unknown): void {
    if (!/Command timed out/i.test(String((err as Error)?.message ?? err)) || this.hung) return;
    this.hung = true;
    this.log.warn({ timeoutMs: this.options.commandTimeoutMs ?? 3000 }, 'redis does not answer (command timed out): degraded');
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
    // That node did not answer (or answered no slot table): the next tick asks another.
    if (!Array.isArray(table)) return;
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

  private down(role: string): void {
    const was = this.cmdUp && this.busUp;
    if (role === 'commands') this.cmdUp = false;
    else this.busUp = false;
    if (was && !this.stopped) this.log.warn({ role }, 'redis unreachable: degraded (publishes answer unavailable)');
    if (role === 'subscriber') this.members.subscriber(false);
  }

  /** The command connection is (back) up: learn the life, reserve ids, re-assert this node and its clients. */
  private async cmdReady(): Promise<void> {
    if (this.stopped || this.initing) return;
    this.initing = true;
    try {
      const fresh = shortId(6);
      // The id counter is put back at least past every id this node reserved (Redis may have lost it): none is given twice.
      const life = (await this.script(LUA.INIT, [KEYS.life, KEYS.ids], [fresh, String(this.ids.reservedUpTo), this.lifeId === '' ? '0' : '1'])) as unknown;
      if (typeof life !== 'string' || !LIFE.test(life)) throw new Error(`INIT answered ${JSON.stringify(life)?.slice(0, 40)}, not a life`);
      const lost = this.lifeId !== '' && life !== this.lifeId;
      if (lost) {
        this.log.warn({ was: this.lifeId, life }, 'Redis lost its data: new life (resumes answer recovered: false)');
        this.ids.lost();
        this.members.lifeLost();
      }
      this.lifeId = life;
      if (this.ids.exhausted) await this.ids.reserveBlock();
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
    if (this.stopped) return;
    this.busUp = true;
    this.everUp ||= this.cmdUp;
    this.members.subscriber(true);
  }

  /**
   * Re-asserts this node and its clients, then settles the presence events of the time it was away: when it had
   * been taken for dead (reaped, or Redis lost it), every node heard its clients end (`timeout`), so each is
   * announced again (`join` per filter) and the held events, older than that, are dropped; otherwise the held
   * events go out in the order they happened. When Redis lost its data (`lost`) nobody was reaped or announced.
   */
  private async reassert(lost = false): Promise<void> {
    const life = this.lifeId;
    const args = [this.id, String(this.nodeTtlMs)];
    for (const [id, json] of this.members.records()) args.push(id, json);
    const [gone, ...conflicts] = (await this.script(LUA.REASSERT, [KEYS.nodes, KEYS.heartbeat(this.id), KEYS.clients, KEYS.names, KEYS.nodeClients(this.id)], args)) as [number, ...string[]];
    for (const id of conflicts) this.log.warn({ client: id }, 'while Redis was unreachable another node gave this client\'s name away; it keeps it locally');
    const clients = this.members.count();
    if (gone === 1 && !lost && clients > 0 && (await this.cmd.get(KEYS.life).catch(() => life)) !== life) {
      // Not reaped: Redis lost its data while this node stayed connected (a flushed Redis, a Redis Cluster restarted),
      // so nobody announced its clients' end. It initialises again, as tick() may be doing (no `join` again).
      if (this.lifeId === life) void this.cmdReady();
      return;
    }
    this.members.reasserted(gone === 1 && !lost && clients > 0);
  }

  /**
   * Every tick, in one round trip (all `{g}` keys): the heartbeat, the node set (is this node still in it? which
   * others might be dead?) and the life. Redis can lose its data without the command connection closing (a Redis
   * Cluster stays `ready` while a shard restarts, a flushed Redis says nothing): a life that changed makes the node
   * initialise again as after a reconnect (the new life, the id counter, its clients re-asserted).
   */
  private async tick(): Promise<void> {
    this.heartbeat?.alive(); // the loop turns, whether or not Redis answers (heartbeat.ts)
    if (!this.cmdUp || this.stopped) return;
    this.shards?.refresh();
    // Beside the heartbeat, not before it: CLUSTER SLOTS has no bound of its own and a master that is down answers
    // its ping only after the bound, and neither may hold this node's heartbeat back (waiting on them through a
    // Redis Cluster restart, a node on a short TTL could be reaped while alive and its clients announced again).
    // Handled at once: a rejection left waiting for the `await` below while the tick's own awaits run is one Node
    // reports as unhandled (vitest failed a run on it once).
    const masters = this.checkMasters().catch((err: unknown) => this.log.debug({ err: (err as Error).message }, 'redis cluster masters not checked'));
    try {
      const [, [, nodes], [, life]] = (await this.cmd
        .multi()
        .set(KEYS.heartbeat(this.id), '1', 'PX', this.nodeTtlMs)
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
      if (!nodes.includes(this.id)) {
        // Another node took this one for dead (unreachable, or stuck, for too long): come back. Unless this node is
        // initialising (an earlier tick saw a new life, or the connection came back): its own REASSERT is on the way
        // and knows whether Redis lost its data; one from here could run first and take a lost node set for a reap,
        // announcing every client again (`join`s nobody should see).
        if (!this.initing) {
          this.log.warn('this node was reaped by another; re-asserting its clients');
          await this.reassert();
        }
      } else this.members.ticked();
      await this.reaper.pass(nodes);
    } catch (err) {
      this.noteTimeout(err);
      this.log.debug({ err: (err as Error).message }, 'cluster tick failed');
    }
    await masters;
  }
}

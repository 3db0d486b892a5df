// Persistent MQTT sessions shared by every node of a cluster, in Redis (docs/mqtt.md, Sessions): a session left on
// one node is resumed on any other. One hash of client id → the session (filters, positions, unacknowledged
// messages), one sorted set of when each was kept (the least recently kept goes first over --mqtt-sessions), one of
// when each expires (5.0 session expiry; 3.1.1 sessions never do), and one hash of client id → the connection that
// holds its session now (its owner: store.ts), so a session kept late by a connection that was taken over never
// overwrites a newer connection's. All under `{g}`: one script per operation.
// A session is at most SESSION_BYTES_MAX encoded: unacknowledged messages that do not fit are left out and their
// topics' positions moved back before them, so the resume replays them from the topic's history instead.
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { QoS } from 'mqtt-packet';
import { Outgoing } from '../../protocol/outgoing.js';
import { filterMatches, isWildcard } from '../../protocol/topic.js';
import { KEYS } from '../../engine/redis/keys.js';
import { isOutOfMemory, isRedisDown } from '../../engine/redis/refusals.js';
import { maybeRan } from '../../engine/redis/outcome.js';
import type { Config } from '../../config.js';
import { OWN_IDS, POSITIONS_MAX, RETAINED_MAX, type Inflight, type Position, type SessionClaim, type SessionStore, type StoredSession, type TopicPositions } from './store.js';
import { RedisRetainedStore } from './redis-retained.js';
import { inflightProperties, payloadOf } from './packets.js';
import { carried, storedProperties, type CarriedProperties } from './payload.js';
import type { MqttStores } from './transport.js';
import type { ScriptRunner } from '../../engine/redis/script-runner.js';
import { FORGET, KEEP, MARK_ENDING, RELEASE, SESSION_BYTES_MAX, SESSION_KEYS, TAKE } from './redis-session-scripts.js';

/** Whether a failed command failed for Redis being out of reach (down, timed out, loading, out of memory). */
const passing = (err: unknown): boolean => isRedisDown(err) || isOutOfMemory(err);

/**
 * How many error replies a release waiting for a retry meets before it is dropped (one a second: about a minute).
 * An error reply may pass (BUSY, READONLY during a failover) or not (a script error); Redis being out of reach
 * does not count.
 */
const RELEASE_ERRORS_MAX = 60;

/** Failed releases remembered for a retry at most (the oldest forgotten first). */
const UNRELEASED_MAX = 100_000;

/** Session holds read per HSCAN step when a dead node's are looked for. */
const FORGET_SCAN = 1000;

/**
 * A session as stored: filters, positions [topic, seq, epoch], unacknowledged messages [pid, qos, released, topic,
 * payload base64, retain, then optionally: the Subscription Identifiers it went out with (null: none), its 5.0
 * properties as carried (payload.ts, correlation data in base64) and when its message was published or kept (ms)].
 * Sessions stored before the last two (older nodes) have none: their resends go without properties.
 */
interface Encoded {
  f: [string, QoS][];
  p: [string, number, string][];
  l?: string;
  i: [number, 1 | 2, boolean, string, string, boolean, (number[] | null)?, CarriedProperties?, number?][];
  n: number;
  x: number | null;
  /** QoS 2 ids received, not released. */
  r?: number[];
  /** No Local filters. */
  o?: string[];
  /** Retain As Published filters. */
  a?: string[];
  /** Filters' Subscription Identifiers. */
  s?: [string, number][];
  /** Its last connections' ids. */
  d?: string[];
  /** Its user. */
  u?: string;
  /** The owner of the connection whose delayed will waits. */
  w?: string;
}

/** The stores of a cluster node: sessions, retained messages and positions in the Redis its engine uses. */
export function redisStores(cmd: Redis | Cluster, scripts: ScriptRunner, config: Config, log: Logger): MqttStores & { sessions: RedisSessionStore } {
  return {
    sessions: new RedisSessionStore(scripts, config.mqttSessions, payloadOf, log, cmd),
    retained: config.mqttRetainedBytes > 0 ? new RedisRetainedStore(cmd, scripts, RETAINED_MAX, config.mqttRetainedBytes, log) : undefined,
    positions: redisPositions(cmd, POSITIONS_MAX),
  };
}

export class RedisSessionStore implements SessionStore {
  /** Dead nodes whose holds are cleared when their grace ends (forgetLater). */
  private readonly forgetting = new Set<NodeJS.Timeout>();
  /**
   * Releases Redis did not answer, by client id, then owner (with drop or not): retried until it does (otherwise the
   * hold stays, and what its connection resumed stays stored outside the bound for as long as its client is away),
   * and run before a new claim of that client id. At most UNRELEASED_MAX (the oldest client id's forgotten first).
   */
  private readonly unreleased = new Map<string, Map<string, { drop: boolean; errors: number }>>();
  private unreleasedCount = 0;
  private retrying: NodeJS.Timeout | undefined;
  /** A retry round is running: one at a time (a release failing meanwhile is taken by this round's next turn). */
  private retryRunning = false;
  private closed = false;

  constructor(
    /** The engine's Lua runner (EVALSHA once Redis has a script). */
    private readonly scripts: ScriptRunner,
    private readonly max: number,
    /** The bytes an unacknowledged message was (or would be) sent with. */
    private readonly payloadOf: (out: Outgoing) => Buffer,
    private readonly log: Logger,
    /** The engine's command connection (the holds of a dead node are looked for with HSCAN). */
    private readonly cmd?: Redis | Cluster,
  ) {}

  /**
   * Node `node` was reaped (dead: its heartbeat expired): after `graceMs`, unless it is a member of the cluster again
   * by then, the session holds of its connections are ended. They would otherwise stay in Redis for as long as their
   * client ids never connect again (a CONNECT overrides a dead node's hold anyway). A node that comes back later
   * than that finds its connections' holds gone: their sessions are not kept when they end (as if taken over).
   */
  forgetLater(node: string, graceMs: number): void {
    const timer = setTimeout(() => {
      this.forgetting.delete(timer);
      this.forget(node).then(
        (ended) => ended > 0 && this.log.info({ node, holds: ended }, 'MQTT session holds of a dead node ended'),
        (err: Error) => this.log.warn({ err: err.message, node }, 'MQTT session holds of a dead node not ended: Redis did not answer (they stay until their clients connect again)'),
      );
    }, graceMs);
    timer.unref();
    this.forgetting.add(timer);
  }

  /** Ends the session holds of `node`'s connections now, unless it is a member again; how many ended. */
  async forget(node: string): Promise<number> {
    if (!this.cmd) return 0;
    const prefix = `${node}/`;
    let cursor = '0';
    let ended = 0;
    do {
      const [next, flat] = await this.cmd.hscan(SESSION_KEYS.owners, cursor, 'COUNT', FORGET_SCAN);
      cursor = next;
      const ids: string[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i + 1]!.startsWith(prefix)) ids.push(flat[i]!);
      if (ids.length === 0) continue;
      const n = (await this.scripts.run(FORGET, [...this.keys, KEYS.nodes], [node, String(Date.now()), String(this.max), ...ids])) as number;
      if (n < 0) return ended; // it came back
      ended += n;
    } while (cursor !== '0');
    return ended;
  }

  /** Stops the pending clearings (the broker closes). */
  close(): void {
    for (const timer of this.forgetting) clearTimeout(timer);
    this.forgetting.clear();
    clearTimeout(this.retrying);
    this.retrying = undefined;
    this.closed = true;
    this.unreleased.clear();
    this.unreleasedCount = 0;
  }

  private get keys(): string[] {
    return [SESSION_KEYS.sessions, SESSION_KEYS.kept, SESSION_KEYS.expires, SESSION_KEYS.owners, SESSION_KEYS.ending, SESSION_KEYS.intervals];
  }

  /** Rejects when Redis cannot answer: the client is then refused (server unavailable), not resumed empty. */
  async take(clientId: string, owner: string, force = false, resume = false): Promise<SessionClaim> {
    // A hold its release could not end yet (a refused CONNECT of this client id a moment ago) ends first, as it would
    // have: a claim must not take it for a live one and override it.
    const unreleased = this.unreleased.get(clientId);
    // (An error reply here is not counted against the release: the retry round is its clock, once a second.)
    if (unreleased) for (const [holder, { drop }] of [...unreleased]) await this.runRelease(clientId, holder, drop).catch((err: unknown) => {
        if (passing(err)) throw err;
      });
    const [taken, raw] = (await this.scripts.run(TAKE, this.keys, [String(Date.now()), clientId, owner, force ? '1' : '', resume ? '1' : ''])) as [number, string | undefined];
    if (taken === 0) return { heldBy: raw ?? '' };
    if (raw === undefined) return { session: undefined };
    const session = decodeSession(raw);
    if (!session) this.log.warn({ clientId }, 'stored MQTT session unreadable: dropped');
    // Expiry is Redis's (TAKE): the stored `x` of a session resumed and held since is from before its connection.
    return { session };
  }

  /** 'unknown' when the mark was sent and not answered (timed out, or its connection broke): it may have been made. */
  async markEnding(clientId: string, owner: string): Promise<boolean | 'unknown'> {
    try {
      return (await this.scripts.run(MARK_ENDING, [SESSION_KEYS.owners, SESSION_KEYS.ending], [clientId, owner])) === 1;
    } catch (err) {
      if (maybeRan(err)) return 'unknown';
      throw err;
    }
  }

  /** Rejects when Redis cannot answer (what was stored when the connection resumed stays). */
  async keep(clientId: string, owner: string, session: StoredSession): Promise<boolean> {
    if (this.max === 0) return this.release(clientId, owner, true).then(() => false);
    const value = encodeSession(session, this.payloadOf, SESSION_BYTES_MAX);
    const expires = session.expiresAt === Infinity ? '' : String(session.expiresAt);
    return (await this.scripts.run(KEEP, this.keys, [String(Date.now()), clientId, value, expires, String(this.max), owner])) === 1;
  }

  /** Never rejects: a hold Redis could not end is logged (the client's next connection waits for it, bounded). */
  async release(clientId: string, owner: string, drop = false): Promise<void> {
    try {
      await this.runRelease(clientId, owner, drop);
    } catch (err) {
      if (this.closed) return void this.log.warn({ err: (err as Error).message, clientId }, 'MQTT session hold not released: Redis did not answer as the broker closed');
      this.log.warn({ err: (err as Error).message, clientId }, 'MQTT session hold not released (retried)');
      this.remember(clientId, owner, drop, passing(err) ? 0 : 1);
    }
  }

  /** Releases waiting for a retry (the broker's own view: tests, metrics). */
  get pendingReleases(): number {
    return this.unreleasedCount;
  }

  private async runRelease(clientId: string, owner: string, drop: boolean): Promise<void> {
    await this.scripts.run(RELEASE, this.keys, [clientId, owner, drop ? '1' : '', String(Date.now()), String(this.max)]);
    this.forgetRelease(clientId, owner);
  }

  /**
   * A retried release Redis answered with an error reply: counted, and dropped (logged) after RELEASE_ERRORS_MAX of
   * them (the round goes on with the other releases).
   */
  private refusedRetry(err: unknown, clientId: string, owner: string): void {
    const entry = this.unreleased.get(clientId)?.get(owner);
    if (!entry || ++entry.errors < RELEASE_ERRORS_MAX) return;
    this.log.error({ err: (err as Error).message, clientId, errors: RELEASE_ERRORS_MAX }, 'MQTT session hold not released: Redis refused it every time (given up)');
    this.forgetRelease(clientId, owner);
  }

  private forgetRelease(clientId: string, owner: string): void {
    const owners = this.unreleased.get(clientId);
    if (!owners?.delete(owner)) return;
    this.unreleasedCount--;
    if (owners.size === 0) this.unreleased.delete(clientId);
  }

  private remember(clientId: string, owner: string, drop: boolean, errors: number): void {
    let owners = this.unreleased.get(clientId);
    if (!owners?.has(owner)) {
      if (this.unreleasedCount >= UNRELEASED_MAX) {
        const [oldest, its] = this.unreleased.entries().next().value!;
        this.unreleasedCount -= its.size;
        this.unreleased.delete(oldest);
        if (oldest === clientId) owners = undefined; // forgotten with its client id: this release starts it anew
      }
      if (!owners) this.unreleased.set(clientId, (owners = new Map()));
      this.unreleasedCount++;
    }
    owners.set(owner, { drop, errors });
    this.retryLater();
  }

  /** Retries the releases Redis did not answer, a second from now (RELEASE is idempotent: a hold taken since is left alone). */
  private retryLater(): void {
    if (this.retrying || this.retryRunning || this.closed) return;
    this.retrying = setTimeout(() => {
      this.retrying = undefined;
      void this.retry();
    }, 1000);
    this.retrying.unref();
  }

  private async retry(): Promise<void> {
    this.retryRunning = true;
    try {
      round: for (const [clientId, owners] of [...this.unreleased]) {
        for (const [owner, { drop }] of [...owners]) {
          if (this.closed) return;
          try {
            await this.runRelease(clientId, owner, drop);
          } catch (err) {
            if (passing(err)) break round; // still out of reach
            this.refusedRetry(err, clientId, owner);
          }
        }
      }
    } finally {
      this.retryRunning = false;
    }
    if (this.unreleasedCount > 0) this.retryLater();
  }
}

/**
 * The session's JSON, at most `maxBytes`: unacknowledged messages beyond it are left out, and the position of each
 * one's topic is moved back to just before it (its history replays it on resume, as a new delivery).
 */
export function encodeSession(s: StoredSession, payloadOf: (out: Outgoing) => Buffer, maxBytes: number): string {
  const positions = new Map(s.positions);
  const base: Encoded = { f: [...s.filters], p: [], ...(s.life !== undefined && { l: s.life }), i: [], n: s.nextPacketId, x: s.expiresAt === Infinity ? null : s.expiresAt, ...(s.received?.length && { r: s.received }), ...(s.noLocal?.length && { o: s.noLocal }), ...(s.retainAsPublished?.length && { a: s.retainAsPublished }), ...(s.subscriptionIds?.length && { s: s.subscriptionIds }), ...(s.ids?.length && { d: s.ids }), ...(s.user !== undefined && { u: s.user }), ...(s.will !== undefined && { w: s.will }) };
  let bytes = JSON.stringify(base).length + [...positions].reduce((sum, [t, p]) => sum + t.length + p.epoch.length + 24, 0);
  for (const [pid, flight] of s.inflight) {
    const payload = Buffer.isBuffer(flight.payload) ? flight.payload : payloadOf(flight.payload);
    const entry: Encoded['i'][number] = [pid, flight.qos, flight.released, flight.topic, payload.toString('base64'), flight.retain];
    // Its properties and when its message was published, for its resend (a released one is resent as a PUBREL alone).
    const kept = flight.released ? undefined : inflightProperties(flight);
    const properties = carried(kept?.properties);
    if (properties) entry.push(flight.ids ?? null, properties, typeof kept?.at === 'number' ? kept.at : Date.now());
    else if (flight.ids) entry.push(flight.ids);
    const cost = JSON.stringify(entry).length + 1;
    if (bytes + cost <= maxBytes || flight.released) {
      base.i.push(entry);
      bytes += cost;
      continue;
    }
    // Left out: replayed from the history instead, from just before it (a retained message has no position).
    if (flight.payload instanceof Outgoing) {
      const f = flight.payload.frame as { seq?: number; epoch?: string };
      const at = positions.get(flight.topic);
      if (typeof f.seq === 'number' && typeof f.epoch === 'string' && (!at || at.epoch !== f.epoch || at.seq >= f.seq)) positions.set(flight.topic, { seq: f.seq - 1, epoch: f.epoch });
    }
  }
  base.p = [...positions].map(([t, p]) => [t, p.seq, p.epoch]);
  return JSON.stringify(base);
}

/** Whether `v` is a Subscription Identifier (1 to 268,435,455). */
const isSubscriptionId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= 0x0fffffff;

/** The Subscription Identifiers of a stored unacknowledged message (none: undefined). */
const idsOf = (v: unknown): number[] | undefined => (Array.isArray(v) && v.length > 0 && v.every(isSubscriptionId) ? v : undefined);

/** A stored session, or undefined when the JSON is not one. */
export function decodeSession(raw: string): StoredSession | undefined {
  try {
    const e = JSON.parse(raw) as Encoded;
    if (!Array.isArray(e.f) || !Array.isArray(e.p) || !Array.isArray(e.i) || typeof e.n !== 'number') return undefined;
    const inflight = new Map<number, Inflight>();
    for (const [pid, qos, released, topic, payload, retain, ids, properties, at] of e.i) {
      const stored = properties === undefined ? undefined : storedProperties(properties);
      inflight.set(pid, { qos, released, topic, payload: Buffer.from(payload, 'base64'), retain, ids: idsOf(ids), ...(stored && { properties: stored, at: Number.isSafeInteger(at) ? at : Date.now() }) });
    }
    return {
      filters: new Map(e.f),
      positions: new Map(e.p.map(([t, seq, epoch]): [string, Position] => [t, { seq, epoch }])),
      life: e.l,
      inflight,
      nextPacketId: e.n,
      received: Array.isArray(e.r) ? e.r.filter((pid) => Number.isSafeInteger(pid)) : undefined,
      noLocal: Array.isArray(e.o) ? e.o.filter((f) => typeof f === 'string') : undefined,
      retainAsPublished: Array.isArray(e.a) ? e.a.filter((f) => typeof f === 'string') : undefined,
      subscriptionIds: Array.isArray(e.s) ? e.s.filter((x): x is [string, number] => Array.isArray(x) && typeof x[0] === 'string' && isSubscriptionId(x[1])) : undefined,
      ids: Array.isArray(e.d) ? e.d.filter((id) => typeof id === 'string').slice(-OWN_IDS) : undefined,
      user: typeof e.u === 'string' ? e.u : undefined,
      will: typeof e.w === 'string' ? e.w : undefined,
      expiresAt: e.x === null ? Infinity : e.x,
    };
  } catch {
    return undefined;
  }
}

/**
 * The positions the topics matching `filters` have now, from the engine's per-topic meta (wildcards: the topics of
 * `sb:{g}:topics` they match, at most `max` each, as a wildcard resume reads them). Rejects when Redis cannot answer.
 */
export function redisPositions(cmd: Redis | Cluster, max: number): TopicPositions {
  return async (filters) => {
    const all = filters.some(isWildcard) ? await cmd.smembers(KEYS.topics) : [];
    const byFilter = new Map<string, string[]>();
    const topics = new Set<string>();
    for (const f of filters) {
      const matched = isWildcard(f) ? all.filter((t) => filterMatches(f, t)).slice(0, max) : [f];
      byFilter.set(f, matched);
      for (const t of matched) topics.add(t);
    }
    // One command per topic (each its own slot on Redis Cluster), sent at once.
    const metas = new Map<string, Position>();
    await Promise.all(
      [...topics].map(async (t) => {
        const [seq, epoch] = await cmd.hmget(KEYS.meta(t), 'seq', 'epoch');
        if (seq && epoch && Number(seq) > 0) metas.set(t, { seq: Number(seq), epoch });
      }),
    );
    const out = new Map<string, [string, Position][]>();
    for (const [f, matched] of byFilter) out.set(f, matched.flatMap((t): [string, Position][] => (metas.has(t) ? [[t, metas.get(t)!]] : [])));
    return out;
  };
}

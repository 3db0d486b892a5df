// Retained MQTT messages shared by every node of a cluster, in Redis (docs/mqtt.md, Retained messages). One hash of
// topic → message, one sorted set of the topic names (lexicographic, for wildcard look-ups by literal prefix), one of
// their age (the oldest goes first when the count or byte bound is reached), one hash of totals; all under `{g}`,
// so one script keeps them consistent (one slot on Redis Cluster). The last publish of a topic wins by its position:
// a retained message carries its publish's epoch and seq, and an older one (same epoch, lower seq) is ignored.
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { QoS } from 'mqtt-packet';
import { isWildcard } from '../../protocol/topic.js';
import { mqttMatches } from './match.js';
import type { PacketProperties } from './payload.js';
import type { Position, Retained, RetainedStore } from './store.js';
import type { ScriptRunner } from '../../engine/redis/script-runner.js';

export const RETAINED_KEYS = {
  /** Hash: topic → `<epoch> <seq> <cost>\n<JSON {q, p (base64), pr?, at}>`; cost: payload and topic bytes, as on one node. */
  messages: 'sb:{g}:mqtt:retained',
  /** Sorted set, every score 0: the topics, in byte order (ZRANGEBYLEX over a filter's literal prefix). */
  names: 'sb:{g}:mqtt:retained:names',
  /** Sorted set: topic → the order it was kept in (the lowest goes first). */
  age: 'sb:{g}:mqtt:retained:age',
  /** Hash: bytes (the costs of the messages kept), n (a counter for `age`). */
  totals: 'sb:{g}:mqtt:retained:totals',
  /** Hash: topic → `epoch seq` of the clear that emptied it, so an older publish kept late does not bring it back. */
  cleared: 'sb:{g}:mqtt:retained:cleared',
} as const;

/** Topic names one read of a wildcard look-up takes (under the filter's literal prefix, in byte order). */
export const RETAINED_SCAN_PAGE = 10_000;

/**
 * KEYS: messages, names, age, totals, cleared. ARGV: topic, value ('' clears), epoch, seq (-1: no order), max
 * messages, max bytes, cost. Returns 1 when kept (or cleared), 0 when ignored (older than the one kept or than the
 * clear that emptied the topic, or over the budget). A clear's position is kept (at most max messages of them, a
 * random one going when over) so that an older publish a slower node keeps after it is ignored, not kept again.
 */
const SET = `
local topic, value, epoch, seq = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local maxN, maxB, cost = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local function remove(t)
  local v = redis.call('HGET', KEYS[1], t)
  if not v then return end
  redis.call('HDEL', KEYS[1], t)
  redis.call('ZREM', KEYS[2], t)
  redis.call('ZREM', KEYS[3], t)
  redis.call('HINCRBY', KEYS[4], 'bytes', -(tonumber(string.match(v, '^%S* %-?%d+ (%d+)')) or 0))
end
local function newer(rec)
  if not rec then return false end
  local e, s = string.match(rec, '^(%S*) (%-?%d+)')
  return e == epoch and tonumber(s) > seq
end
if seq >= 0 and (newer(redis.call('HGET', KEYS[1], topic)) or newer(redis.call('HGET', KEYS[5], topic))) then return 0 end
remove(topic)
if value == '' then
  if seq >= 0 then
    redis.call('HSET', KEYS[5], topic, epoch .. ' ' .. seq)
    if redis.call('HLEN', KEYS[5]) > maxN then
      local other = redis.call('HRANDFIELD', KEYS[5])
      if other and other ~= topic then redis.call('HDEL', KEYS[5], other) end
    end
  end
  return 1
end
redis.call('HDEL', KEYS[5], topic)
if cost > maxB then return 0 end
while redis.call('ZCARD', KEYS[3]) >= maxN or tonumber(redis.call('HGET', KEYS[4], 'bytes') or '0') + cost > maxB do
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if not oldest then break end
  remove(oldest)
end
local n = redis.call('HINCRBY', KEYS[4], 'n', 1)
redis.call('HSET', KEYS[1], topic, value)
redis.call('ZADD', KEYS[2], 0, topic)
redis.call('ZADD', KEYS[3], n, topic)
redis.call('HINCRBY', KEYS[4], 'bytes', cost)
return 1
`;

interface Encoded {
  q: QoS;
  p: string;
  pr?: Record<string, unknown>;
  at: number;
}

export class RedisRetainedStore implements RetainedStore {
  constructor(
    private readonly cmd: Redis | Cluster,
    /** The engine's Lua runner (EVALSHA once Redis has a script). */
    private readonly scripts: ScriptRunner,
    private readonly maxMessages: number,
    private readonly maxBytes: number,
    private readonly log: Logger,
    /** Names read per page of a wildcard look-up. */
    private readonly page = RETAINED_SCAN_PAGE,
  ) {}

  /** Never rejects: a message Redis could not keep is logged (its publish itself stands). */
  async set(message: Retained, order?: Position): Promise<void> {
    // Charged as on one node (payload and topic); Redis holds about 4/3 of the payload (base64) and ~60 bytes more.
    const cost = message.payload.length + Buffer.byteLength(message.topic);
    const value = message.payload.length === 0 ? '' : `${order?.epoch ?? ''} ${order?.seq ?? -1} ${cost}\n${JSON.stringify(encode(message))}`;
    const keys = [RETAINED_KEYS.messages, RETAINED_KEYS.names, RETAINED_KEYS.age, RETAINED_KEYS.totals, RETAINED_KEYS.cleared];
    const args = [message.topic, value, order?.epoch ?? '', String(order?.seq ?? -1), String(this.maxMessages), String(this.maxBytes), String(cost)];
    try {
      await this.scripts.run(SET, keys, args);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, topic: message.topic }, 'retained message not kept: Redis did not take it');
    }
  }

  /**
   * An exact filter: one HGET. A wildcard: the topic names under its literal prefix (the levels before the first
   * wildcard), read in pages of RETAINED_SCAN_PAGE until `limit` match or the prefix's names end (at most the store's
   * message bound in all), matched here; then the messages of the matches, in one HMGET.
   * Never rejects: while Redis cannot answer, a subscription gets no retained messages (logged).
   */
  async matching(filter: string, limit: number): Promise<Retained[]> {
    try {
      if (!isWildcard(filter)) {
        const raw = await this.cmd.hgetBuffer(RETAINED_KEYS.messages, filter);
        const r = raw && decode(filter, raw.toString('utf8'));
        return r ? [r] : [];
      }
      const topics = await this.matchingNames(filter, limit);
      if (topics.length === 0) return [];
      const values = await this.cmd.hmget(RETAINED_KEYS.messages, ...topics);
      const out: Retained[] = [];
      topics.forEach((t, i) => {
        const r = values[i] ? decode(t, values[i]!) : undefined;
        if (r) out.push(r);
      });
      return out;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, filter }, 'retained messages not read: Redis did not answer');
      return [];
    }
  }

  /** The retained topics `filter` matches, at most `limit`, from the names under its literal prefix, page by page. */
  private async matchingNames(filter: string, limit: number): Promise<string[]> {
    const prefix = literalPrefix(filter);
    const end = prefix === '' ? '+' : (Buffer.concat([Buffer.from(`[${prefix}`), PAST]) as unknown as string);
    let from = prefix === '' ? '-' : `[${prefix}`;
    const out: string[] = [];
    for (let read = 0; read < this.maxMessages; read += this.page) {
      const names = await this.cmd.zrangebylex(RETAINED_KEYS.names, from, end, 'LIMIT', 0, this.page);
      for (const t of names) {
        if (!mqttMatches(filter, t)) continue;
        out.push(t);
        if (out.length >= limit) return out;
      }
      if (names.length < this.page) break;
      from = `(${names[names.length - 1]!}`;
    }
    return out;
  }
}

/** Names are read as bytes: a range bound past every name that starts with `prefix` (no UTF-8 text holds 0xff). */
const PAST = Buffer.from([0xff]);

/** The levels of `filter` before its first wildcard level: every topic it matches starts with them. */
export function literalPrefix(filter: string): string {
  const levels = filter.split('/');
  const first = levels.findIndex((l) => l === '+' || l === '#');
  // `a/#` also matches `a` itself: the prefix stops before the separator.
  return levels.slice(0, first).join('/');
}

function encode(m: Retained): Encoded {
  const out: Encoded = { q: m.qos, p: m.payload.toString('base64'), at: m.at ?? Date.now() };
  if (m.properties) {
    const { correlationData, ...rest } = m.properties;
    out.pr = correlationData === undefined ? rest : { ...rest, correlationData: correlationData.toString('base64') };
  }
  return out;
}

/** A stored message, or undefined when it is not one (written by something else: skipped, never a crash). */
function decode(topic: string, value: string): Retained | undefined {
  try {
    const e = JSON.parse(value.slice(value.indexOf('\n') + 1)) as Encoded;
    if (typeof e.p !== 'string' || ![0, 1, 2].includes(e.q)) return undefined;
    const r: Retained = { topic, payload: Buffer.from(e.p, 'base64'), qos: e.q, at: typeof e.at === 'number' ? e.at : Date.now() };
    if (e.pr && typeof e.pr === 'object') {
      const { correlationData, ...rest } = e.pr as PacketProperties & { correlationData?: unknown };
      r.properties = typeof correlationData === 'string' ? { ...rest, correlationData: Buffer.from(correlationData, 'base64') } : rest;
    }
    return r;
  } catch {
    return undefined;
  }
}

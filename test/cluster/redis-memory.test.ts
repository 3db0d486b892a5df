// Redis memory. Each topic's stream is bounded in bytes (--history-topic-bytes) as well as entries (--history),
// exactly and without holes. Redis full (maxmemory with noeviction, the policy docs/cluster.md asks for): a publish
// Redis refuses with OOM is the client's `unavailable` (HTTP 503), never an internal error or a crash; the
// connection stays, and once Redis has room again publishing works and the topic's history is intact.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { PUBLISH_BATCH, SPUBLISH_BATCH, withHistoryTtl } from '../../src/engine/redis/publish-script.js';

const run = requireRedis('cluster: Redis full');

describe.skipIf(!run)('cluster: Redis out of memory', () => {
  let redis: TestRedis;
  let node: TestBroker;
  let admin: Redis;

  beforeAll(async () => {
    redis = await TestRedis.start();
    node = await startNode(redis, { historySize: 1000 });
    admin = new Redis(redis.url);
  });
  afterAll(async () => {
    admin?.disconnect();
    await node?.close();
    await redis?.stop();
  });

  it('a publish refused with OOM answers unavailable (WebSocket and API); after room is made, history is intact', async () => {
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', String(used + 2_000_000));
    const pub = await TestClient.connect(node.url);
    const sub = await TestClient.connect(node.url);
    const first = await sub.request({ op: 'sub', topic: 'big' });
    const blob = 'x'.repeat(20_000);
    let refused: Record<string, unknown> | undefined;
    let accepted = 0;
    for (let i = 0; i < 400 && !refused; i++) {
      const reply = await pub.request({ op: 'pub', topic: 'big', data: blob });
      if (reply.op === 'ack') accepted++;
      else refused = reply;
    }
    expect(accepted).toBeGreaterThan(10);
    expect(refused).toMatchObject({ op: 'error', code: 'unavailable' });
    expect(String(refused!.message)).toMatch(/memory/i);
    // Keep it full whatever Redis frees meanwhile (output buffers): every write is over the limit now.
    await admin.config('SET', 'maxmemory', '1');
    expect(await pub.request({ op: 'pub', topic: 'big', data: 'tiny' })).toMatchObject({ op: 'error', code: 'unavailable' });
    const api = await fetch(`${node.httpUrl}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'big', data: blob }) });
    expect(api.status).toBe(503);
    expect(((await api.json()) as { error: string }).error).toBe('unavailable');
    // The connection is fine: ping answers; the subscriber got exactly the accepted messages, in order.
    expect((await pub.request({ op: 'ping' })).op).toBe('pong');
    await sub.request({ op: 'ping' });
    expect(sub.all.filter((f) => f.op === 'msg').map((f) => f.seq)).toEqual(Array.from({ length: accepted }, (_, i) => i + 1));

    // Room again: publishing resumes, and a resume from the start replays the accepted history without a gap.
    await admin.config('SET', 'maxmemory', '0');
    expect(await pub.request({ op: 'pub', topic: 'big', data: 'small' })).toMatchObject({ op: 'ack', seq: accepted + 1 });
    const again = await TestClient.connect(node.url);
    const ack = await again.request({ op: 'sub', topic: 'big', since: 0, epoch: sub.all.find((f) => f.op === 'msg')!.epoch, life: first.life });
    expect(ack).toMatchObject({ recovered: true });
    await again.request({ op: 'ping' });
    expect(again.all.filter((f) => f.op === 'msg').length).toBe(accepted + 1);
    for (const c of [pub, sub, again]) c.close();
  }, 60_000);
});

describe.skipIf(!run)('cluster: history bounded in bytes per topic', () => {
  let redis: TestRedis;
  let node: TestBroker;
  let admin: Redis;

  beforeAll(async () => {
    redis = await TestRedis.start();
    node = await startNode(redis, { historySize: 1000, historyTopicBytes: 10_000 });
    admin = new Redis(redis.url);
  });
  afterAll(async () => {
    admin?.disconnect();
    await node?.close();
    await redis?.stop();
  });

  it('the history keeps the newest messages that fit the byte budget; resumes inside it recover, before it say history_trimmed', async () => {
    const pub = await TestClient.connect(node.url);
    const life = (await pub.request({ op: 'sub', topic: 'other' })).life;
    const acks = [];
    for (let i = 1; i <= 40; i++) acks.push(await pub.request({ op: 'pub', topic: 'kb', data: `${i}:${'y'.repeat(900)}` }));
    const { epoch } = acks[0]!;
    // What Redis holds: fewer than 40, contiguous up to 40, and the counted bytes are the frames' bytes within budget
    // (the history list holds exactly the newest entries).
    const entries = (await admin.lrange(KEYS.log('kb'), 0, -1)).map((e) => e.slice(e.indexOf('{')));
    const seqs = entries.map((frame) => (JSON.parse(frame) as { seq: number }).seq);
    expect(seqs.length).toBeGreaterThan(5);
    expect(seqs.length).toBeLessThan(12);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, k) => 41 - seqs.length + k));
    const counted = Number(await admin.hget(KEYS.meta('kb'), 'bytes'));
    const frames = entries.reduce((sum, frame) => sum + Buffer.byteLength(frame), 0);
    expect(counted).toBe(frames);
    expect(counted).toBeLessThanOrEqual(10_000);

    const first = seqs[0]!;
    const inside = await TestClient.connect(node.url);
    expect(await inside.request({ op: 'sub', topic: 'kb', since: first - 1, epoch, life })).toMatchObject({ recovered: true });
    await inside.request({ op: 'ping' });
    expect(inside.all.filter((f) => f.op === 'msg').map((f) => f.seq)).toEqual(seqs);
    const before = await TestClient.connect(node.url);
    expect(await before.request({ op: 'sub', topic: 'kb', since: first - 2, epoch, life })).toMatchObject({ recovered: false, missed: { kb: 'history_trimmed' } });

    // One message bigger than the whole budget: kept by nobody, and nothing before it is replayable either.
    await pub.request({ op: 'pub', topic: 'kb', data: 'z'.repeat(12_000) });
    expect(await admin.llen(KEYS.log('kb'))).toBe(0);
    expect(await admin.hget(KEYS.meta('kb'), 'bytes')).toBe('0');
    const after = await TestClient.connect(node.url);
    expect(await after.request({ op: 'sub', topic: 'kb', since: 40, epoch, life })).toMatchObject({ recovered: false, missed: { kb: 'history_trimmed' } });
    await pub.request({ op: 'pub', topic: 'kb', data: 'small again' });
    expect(await admin.llen(KEYS.log('kb'))).toBe(1);
    const [last] = await admin.lrange(KEYS.log('kb'), 0, -1);
    expect(Number(await admin.hget(KEYS.meta('kb'), 'bytes'))).toBe(Buffer.byteLength(last!.slice(last!.indexOf('{'))));
    for (const c of [pub, inside, before, after]) c.close();
  }, 60_000);
});

// --history-ttl-ms: topics that come and go (a room per session, a topic per device) would otherwise keep their
// history in Redis for good. A topic's history list expires that long after its last publish; its meta (seq, epoch)
// stays, so numbering goes on and a resume from before the gap is told the history was trimmed.
describe.skipIf(!run)('cluster: a topic\'s history expires after --history-ttl-ms without a publish', () => {
  let redis: TestRedis;
  let expiring: TestBroker;
  let keeping: TestBroker;
  let admin: Redis;

  beforeAll(async () => {
    redis = await TestRedis.start();
    [expiring, keeping] = [await startNode(redis, { historyTtlMs: 400 }), await startNode(redis)];
    admin = new Redis(redis.url);
  });
  afterAll(async () => {
    admin?.disconnect();
    await Promise.all([expiring?.close(), keeping?.close()]);
    await redis?.stop();
  });

  const publish = async (node: TestBroker, topic: string, data: string) => {
    const res = await fetch(`${node.httpUrl}/api/publish`, { method: 'POST', body: JSON.stringify({ topic, data }) });
    expect(res.status).toBe(200);
    return (await res.json()) as { seq: number; epoch: string };
  };

  it('the history list goes, the meta stays: the next publish continues the sequence, and a resume from before is history_trimmed', async () => {
    const first = await publish(expiring, 'ttl/t', 'one');
    await publish(expiring, 'ttl/t', 'two');
    const ttl = await admin.pttl(KEYS.log('ttl/t'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(400);
    expect(await admin.pttl(KEYS.meta('ttl/t'))).toBe(-1);
    // Without the setting (the other node publishing), nothing expires.
    await publish(keeping, 'kept/t', 'one');
    expect(await admin.pttl(KEYS.log('kept/t'))).toBe(-1);

    await until(async () => (await admin.exists(KEYS.log('ttl/t'))) === 0, 'the history expired', 10_000);
    expect(await admin.hget(KEYS.meta('ttl/t'), 'seq')).toBe('2');
    const third = await publish(expiring, 'ttl/t', 'three');
    expect(third).toEqual({ seq: 3, epoch: first.epoch, delivered: 0 });

    // A client that saw seq 1 missed seq 2 for good: not recovered, told why, and given what is left (seq 3).
    const resumer = await TestClient.connect(keeping.url);
    try {
      const ack = await resumer.request({ op: 'sub', topic: 'ttl/t', since: 1, epoch: first.epoch });
      expect(ack).toMatchObject({ op: 'ack', recovered: false, missed: { 'ttl/t': 'history_trimmed' } });
      expect(await resumer.next((f) => f.op === 'msg' && f.topic === 'ttl/t')).toMatchObject({ seq: 3, data: 'three' });
    } finally {
      resumer.close();
    }
  });

  it('the TTL is part of the script (its own SHA): none leaves the script as it is; both the classic and the sharded one take it and load', async () => {
    expect(withHistoryTtl(PUBLISH_BATCH, 0)).toBe(PUBLISH_BATCH);
    for (const script of [PUBLISH_BATCH, SPUBLISH_BATCH]) {
      const timed = withHistoryTtl(script, 86_400_000);
      expect(timed.split("redis.call('PEXPIRE', log, 86400000)")).toHaveLength(2);
      expect(await admin.script('LOAD', timed)).toMatch(/^[0-9a-f]{40}$/);
    }
    expect(() => withHistoryTtl(PUBLISH_BATCH, 1.5)).toThrow(/whole number/);
  });
});

// The batched publish path on a real Redis and a real Redis Cluster: StreamPublisher and its PublishBatch over the
// engine's ScriptRunner, without a broker around them. The publishes of one turn are one PUBLISH_BATCH call (per slot
// on a Redis Cluster): a message that fails inside it gets its own error and the others are numbered gapless; keyed
// duplicates inside one batch get the first's position; each channel gets one PUBLISH carrying the batch's entries,
// which are exactly the stream's; the history stays bounded; topics on three shards in one turn are three calls.
import fc from 'fast-check';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRedis, TestRedis, TestRedisCluster } from './redis.js';
import { StreamPublisher } from '../../src/engine/redis/publisher.js';
import { ScriptRunner } from '../../src/engine/redis/script-runner.js';
import { Reach } from '../../src/engine/redis/outcome.js';
import { OwnDeliveries } from '../../src/engine/redis/own-deliveries.js';
import { BrokerStats } from '../../src/engine/stats.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { CLASSIC, publishChannels, SHARDED, type ChannelScheme } from '../../src/engine/redis/interest.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import type { RedisNode } from '../../src/engine/redis/node.js';
import type { PublishResult } from '../../src/engine/engine.js';

const run = requireRedis('publish batch');

/** A StreamPublisher on `cmd` as the engine builds it (the node reduced to what the publisher uses). */
function publisherOn(cmd: Redis | Cluster, historySize = 100, channels: ChannelScheme = CLASSIC, batchIntervalMs = 0, historyTopicBytes = 1 << 20) {
  const scripts = new ScriptRunner(cmd);
  const timeouts: unknown[] = [];
  const node = { id: 'n1', life: 'L', up: true, cmd, reach: new Reach(cmd, 3000), script: (lua: string, keys: string[], args: string[]) => scripts.run(lua, keys, args), publishScript: (lua: string, keys: string[], args: string[]) => scripts.run(lua, keys, args), noteTimeout: (err: unknown) => timeouts.push(err) };
  const publisher = new StreamPublisher(node as unknown as RedisNode, { historySize, historyTopicBytes, hears: () => false, channels, own: new OwnDeliveries(100), stats: new BrokerStats(), batchIntervalMs });
  const pub = (topic: string, data: unknown, key?: string) =>
    publisher.publish(topic, data, null, true, undefined, key).then(
      (r) => (r instanceof ProtocolError ? r.code : r),
      (err: Error) => `fault ${err.message}`,
    );
  return { publisher, pub };
}

const seqOf = (r: PublishResult | string) => (typeof r === 'string' ? r : r.seq);
/** The frame bytes of history entries (what follows each one's bus prefix). */
const frameBytes = (entries: string[]) => entries.reduce((sum, e) => sum + Buffer.byteLength(e.slice(e.indexOf('{'))), 0);

describe.skipIf(!run)('the batched publish path on one Redis', () => {
  let redis: TestRedis;
  let cmd: Redis;
  let sub: Redis;
  const heard: [string, string][] = [];
  beforeAll(async () => {
    redis = await TestRedis.start();
    cmd = new Redis(redis.url);
    sub = new Redis(redis.url);
    sub.on('message', (channel: string, payload: string) => heard.push([channel, payload]));
    await sub.subscribe(publishChannels('b/a')[0], publishChannels('b/b')[0]);
  });
  afterAll(async () => {
    cmd?.disconnect();
    sub?.disconnect();
    await redis?.stop();
  });
  /** Every bus entry heard on `channel` so far, in order (a PUBLISH carries a batch's entries joined by \x1e). */
  const entriesOn = (channel: string) => heard.filter(([c]) => c === channel).flatMap(([, p]) => p.split('\x1e'));

  it('one call for the turn: a failing message gets its own error, the others are numbered gapless and published once per channel', async () => {
    const { publisher, pub } = publisherOn(cmd);
    await cmd.set(KEYS.meta('b/bad'), 'not a hash'); // its HMGET fails: WRONGTYPE
    await Promise.all([pub('b/a', 0), pub('b/b', 0)]); // topics listed, script loaded
    await expect.poll(() => heard.length).toBe(2);
    heard.length = 0;
    const calls = publisher.batch.calls;
    const answers = await Promise.all([pub('b/a', 1), pub('b/bad', 1), pub('b/b', 1), pub('b/a', 2), pub('b/a', 3)]);
    expect(publisher.batch.calls - calls).toBe(1);
    expect(answers.map(seqOf)).toEqual([2, expect.stringMatching(/^fault WRONGTYPE/), 2, 3, 4]);
    // One PUBLISH per channel for the batch; its entries are the history's, in seq order.
    await expect.poll(() => heard.length).toBe(2);
    const onA = heard.find(([c]) => c === publishChannels('b/a')[0])![1].split('\x1e');
    expect(onA.map((e) => JSON.parse(e.slice(e.indexOf('{'))).seq)).toEqual([2, 3, 4]);
    const history = await cmd.lrange(KEYS.log('b/a'), 0, -1);
    expect(history.map((e) => JSON.parse(e.slice(e.indexOf('{'))).seq)).toEqual([1, 2, 3, 4]);
    expect(history.slice(1)).toEqual(onA);
    expect(await cmd.hget(KEYS.meta('b/a'), 'seq')).toBe('4');
  });

  it('keyed publishes: a duplicate in the same batch and in a later one gets the first position, nothing published twice', async () => {
    const { pub } = publisherOn(cmd);
    const [first, again, other] = await Promise.all([pub('b/k', 'x', 'key1'), pub('b/k', 'x', 'key1'), pub('b/k', 'y', 'key2')]);
    const later = await pub('b/k', 'x', 'key1');
    const pos = (r: unknown) => {
      const p = r as PublishResult & { duplicate?: boolean };
      return [p.seq, p.epoch];
    };
    expect(pos(again)).toEqual(pos(first));
    expect(pos(later)).toEqual(pos(first));
    expect(seqOf(other as PublishResult)).toBe(2);
    expect(await cmd.llen(KEYS.log('b/k'))).toBe(2);
  });

  it('with --redis-batch-ms, publishes of several turns within the interval go in one call, numbered in publish order', async () => {
    const { publisher, pub } = publisherOn(cmd, 100, CLASSIC, 1000); // long enough that no stall ends it mid-test
    await pub('b/i', 0); // listed, loaded; the interval starts from this call
    const calls = publisher.batch.calls;
    const answers: Promise<PublishResult | string>[] = [];
    for (let turn = 0; turn < 3; turn++) {
      answers.push(pub('b/i', turn), pub('b/j', turn));
      await new Promise((r) => setImmediate(r)); // the next event-loop turn
    }
    expect(publisher.batch.calls).toBe(calls); // still waiting for the rest of the interval
    const seqs = (await Promise.all(answers)).map(seqOf);
    expect(publisher.batch.calls - calls).toBe(1);
    expect(seqs).toEqual([2, 1, 3, 2, 4, 3]);
    const history = await cmd.lrange(KEYS.log('b/i'), 0, -1);
    expect(history.map((e) => JSON.parse(e.slice(e.indexOf('{'))).seq)).toEqual([1, 2, 3, 4]);
  });

  it('the history stays bounded over batches (entries and the byte count match the history)', async () => {
    const { pub } = publisherOn(cmd, 3);
    for (let turn = 0; turn < 3; turn++) await Promise.all(Array.from({ length: 4 }, (_, i) => pub('b/h', turn * 4 + i)));
    const kept = await cmd.lrange(KEYS.log('b/h'), 0, -1);
    expect(kept.map((e) => JSON.parse(e.slice(e.indexOf('{'))).seq)).toEqual([10, 11, 12]);
    expect(Number(await cmd.hget(KEYS.meta('b/h'), 'bytes'))).toBe(frameBytes(kept));
  });

  it('the byte budget over batches of mixed sizes: the newest frames that fit, counted exactly; one over it empties the history', async () => {
    const { pub } = publisherOn(cmd, 100, CLASSIC, 0, 2_000);
    const channel = publishChannels('b/bytes')[0];
    await sub.subscribe(channel);
    // Turns of varied sizes: each batch drops from the oldest end, by count of bytes.
    const sizes = [10, 1_400, 20, 30, 600, 5, 900, 40, 1_200, 1, 300, 700];
    for (let turn = 0; turn < 4; turn++) await Promise.all(sizes.slice(turn * 3, turn * 3 + 3).map((n, i) => pub('b/bytes', `${turn * 3 + i + 1}:${'b'.repeat(n)}`)));
    await expect.poll(() => entriesOn(channel).length).toBe(12);
    const published = entriesOn(channel);
    const kept = await cmd.lrange(KEYS.log('b/bytes'), 0, -1);
    const counted = Number(await cmd.hget(KEYS.meta('b/bytes'), 'bytes'));
    // Exactly the newest published entries, their frames counted exactly, within the budget; the one before the
    // oldest kept would not have fit.
    expect(kept.length).toBeGreaterThan(1);
    expect(kept.length).toBeLessThan(12);
    expect(kept).toEqual(published.slice(-kept.length));
    expect(counted).toBe(frameBytes(kept));
    expect(counted).toBeLessThanOrEqual(2_000);
    expect(counted + frameBytes([published[published.length - kept.length - 1]!])).toBeGreaterThan(2_000);
    // A frame bigger than the whole budget: nothing is kept (what came before cannot be replayed without it).
    await pub('b/bytes', 'z'.repeat(3_000));
    expect(await cmd.llen(KEYS.log('b/bytes'))).toBe(0);
    expect(await cmd.hget(KEYS.meta('b/bytes'), 'bytes')).toBe('0');
    // Then a small one alone, counted alone.
    await pub('b/bytes', 'small');
    const [only] = await cmd.lrange(KEYS.log('b/bytes'), 0, -1);
    expect(Number(await cmd.hget(KEYS.meta('b/bytes'), 'bytes'))).toBe(frameBytes([only!]));
  });

  it('property: whatever the batches, the history is the newest published entries that fit --history and the byte budget, counted exactly', async () => {
    // The model, one message at a time (the script trims once per call: the same end state): a frame over the whole
    // budget empties the history and is not kept; otherwise it is kept, then the oldest go while over --history
    // entries or (keeping at least one) over the budget.
    const expected = (frames: string[], keep: number, budget: number): string[] => {
      let kept: string[] = [];
      for (const f of frames) {
        if (keep === 0) continue;
        if (Buffer.byteLength(f.slice(f.indexOf('{'))) > budget) {
          kept = [];
          continue;
        }
        kept.push(f);
        while (kept.length > keep) kept.shift();
        while (kept.length > 1 && frameBytes(kept) > budget) kept.shift();
      }
      return kept;
    };
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(0, 1, 2, 3, 5),
        fc.constantFrom(300, 600, 2_000),
        // Turns of publishes (each turn one script call), each message a payload of this many bytes: small ones and
        // large ones (over a 300- or 600-byte budget with the frame around them) in any mix.
        fc.array(fc.array(fc.oneof(fc.integer({ min: 0, max: 120 }), fc.integer({ min: 200, max: 800 })), { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 6 }),
        async (keep, budget, turns) => {
          const topic = `b/prop/${++run}`;
          const channel = publishChannels(topic)[0];
          await sub.subscribe(channel);
          const { pub } = publisherOn(cmd, keep, CLASSIC, 0, budget);
          let n = 0;
          for (const turn of turns) {
            const answers = await Promise.all(turn.map((size) => pub(topic, `${++n}:${'p'.repeat(size)}`)));
            expect(answers.map(seqOf)).toEqual(turn.map((_, i) => n - turn.length + i + 1));
          }
          await expect.poll(() => entriesOn(channel).length).toBe(n);
          await sub.unsubscribe(channel);
          const published = entriesOn(channel);
          const kept = expected(published, keep, budget);
          expect(await cmd.lrange(KEYS.log(topic), 0, -1)).toEqual(kept);
          expect(Number(await cmd.hget(KEYS.meta(topic), 'bytes'))).toBe(frameBytes(kept));
          expect(await cmd.hget(KEYS.meta(topic), 'seq')).toBe(String(n));
        },
      ),
      { numRuns: 100 },
    );
  }, 60_000);
});

describe.skipIf(!run)('the batched publish path on a Redis Cluster (3 masters)', () => {
  let rc: TestRedisCluster;
  let cmd: Cluster;
  beforeAll(async () => {
    rc = await TestRedisCluster.start();
    cmd = new Cluster(rc.ports.map((port) => ({ host: '127.0.0.1', port })));
  }, 60_000);
  afterAll(async () => {
    cmd?.disconnect();
    await rc?.stop();
  });

  it('topics on three shards published in one turn: one call per slot, every seq gapless, no CROSSSLOT (SPUBLISH on sharded channels)', async () => {
    // One topic per master (asked of Redis).
    const topics = new Map<number, string>();
    for (let i = 0; topics.size < 3 && i < 200; i++) {
      const owner = await rc.ownerOf(await rc.keyslot(KEYS.meta(`s/t${i}`)));
      if (!topics.has(owner)) topics.set(owner, `s/t${i}`);
    }
    const { publisher, pub } = publisherOn(cmd, 100, SHARDED);
    await Promise.all([...topics.values()].map((t) => pub(t, 0))); // listed and loaded
    const calls = publisher.batch.calls;
    const answers = await Promise.all([...topics.values()].flatMap((t) => [1, 2, 3].map((i) => pub(t, i))));
    expect(publisher.batch.calls - calls).toBe(3);
    expect(answers.map(seqOf)).toEqual([2, 3, 4, 2, 3, 4, 2, 3, 4]);
  });
});

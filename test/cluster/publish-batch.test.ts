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
  const node = { id: 'n1', life: 'L', up: true, cmd, reach: new Reach(cmd, 3000), script: (lua: string, keys: string[], args: string[]) => scripts.run(lua, keys, args), publishScript: (lua: string, keys: string[], args: string[], asText?: (args: string[]) => string[]) => scripts.run(lua, keys, args, asText), noteTimeout: (err: unknown) => timeouts.push(err) };
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

  it('small frames: the history is trimmed to --history entries once it holds an eighth more, without reading what goes', async () => {
    // --history 16: slack 2, so the list is cut back to 16 when an 18th... 19th entry arrives; every frame is far under
    // the budget's share (1 MiB / 18), so no entry is read back and the byte count is an upper bound.
    const { pub } = publisherOn(cmd, 16);
    const seqsOf = async () => (await cmd.lrange(KEYS.log('b/h'), 0, -1)).map((e) => JSON.parse(e.slice(e.indexOf('{'))).seq as number);
    const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);
    for (let i = 1; i <= 18; i++) await pub('b/h', i);
    expect(await seqsOf()).toEqual(range(1, 18));
    await pub('b/h', 19);
    expect(await seqsOf()).toEqual(range(4, 19));
    // A turn of four: 20..23 make 20 entries, cut back to the newest 16.
    await Promise.all([20, 21, 22, 23].map((i) => pub('b/h', i)));
    expect(await seqsOf()).toEqual(range(8, 23));
    const kept = await cmd.lrange(KEYS.log('b/h'), 0, -1);
    expect(Number(await cmd.hget(KEYS.meta('b/h'), 'bytes'))).toBeGreaterThanOrEqual(frameBytes(kept));
    expect(Number(await cmd.hget(KEYS.meta('b/h'), 'bytes'))).toBeLessThanOrEqual(1 << 20);
    // A resume reads no further back than --history (READ's bound), whatever the list holds beyond it.
    await pub('b/h', 24);
    expect((await seqsOf()).length).toBe(17);
  });

  it('a history written by an older node (no trim record) is recounted exactly before it is trusted', async () => {
    const { pub } = publisherOn(cmd, 4, CLASSIC, 0, 2_000);
    for (let i = 1; i <= 4; i++) await pub('b/old', `${i}:${'o'.repeat(50)}`);
    // Small frames (under 2,000 / 5 each): trimmed by count, nothing read back.
    const small = frameBytes((await cmd.lrange(KEYS.log('b/old'), 0, 0)));
    expect(await cmd.hget(KEYS.meta('b/old'), 'trim')).toMatch(/^4 \d+ 0 0$/);
    // An older node's write: its trim record is not this script's, and its byte count is off.
    await cmd.hset(KEYS.meta('b/old'), 'bytes', '999999', 'trim', 'x');
    // A frame that fits the budget beside one small frame, not beside two (60 bytes either way).
    await pub('b/old', `5:${'o'.repeat(2_000 - small - 60 - (small - 52))}`);
    const kept = await cmd.lrange(KEYS.log('b/old'), 0, -1);
    expect(kept.map((e) => JSON.parse(e.slice(e.indexOf('{'))).seq)).toEqual([4, 5]);
    expect(Number(await cmd.hget(KEYS.meta('b/old'), 'bytes'))).toBe(frameBytes(kept));
    expect(await cmd.hget(KEYS.meta('b/old'), 'trim')).toMatch(/^5 \d+ 5 0$/);
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

  it('property: whatever the batches, the history is the newest entries, within --history (+ an eighth) and the byte budget, trimmed no further than the limits need, its bytes counted exactly or bounded', async () => {
    // Checked after every turn (one script call each) against what was published up to it. A frame over the whole
    // budget empties the history and is not kept. The history is then the newest entries since: at most --history +
    // ceil(--history / 8) of them, within the byte budget, and at least --history of them unless the one before the
    // oldest would not have fit the budget. The meta's bytes are the frames' bytes when its trim record says exact
    // (ub 0), else at least them. Between turns an older node's write may leave a trim record this script did not
    // write (and a wrong byte count): the next call recounts.
    const frame = (e: string) => e.slice(e.indexOf('{'));
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(0, 1, 2, 3, 5, 9, 17),
        fc.constantFrom(300, 600, 2_000, 4_000),
        // Turns of publishes, each message a payload of this many bytes: small ones and large ones (over a 300- or
        // 600-byte budget with the frame around them, over a share of any budget) in any mix.
        fc.array(
          fc.record({ sizes: fc.array(fc.oneof(fc.integer({ min: 0, max: 120 }), fc.integer({ min: 200, max: 800 })), { minLength: 1, maxLength: 6 }), foreign: fc.boolean() }),
          { minLength: 1, maxLength: 8 },
        ),
        async (keep, budget, turns) => {
          const topic = `b/prop/${++run}`;
          const channel = publishChannels(topic)[0];
          await sub.subscribe(channel);
          const { pub } = publisherOn(cmd, keep, CLASSIC, 0, budget);
          const snapshots: { n: number; kept: string[]; bytes: number; exact: boolean }[] = [];
          let n = 0;
          for (const { sizes, foreign } of turns) {
            if (foreign && n > 0) await cmd.hset(KEYS.meta(topic), 'trim', `${n - 1} 1 0 0`, 'bytes', '12345');
            const answers = await Promise.all(sizes.map((size) => pub(topic, `${++n}:${'p'.repeat(size)}`)));
            expect(answers.map(seqOf)).toEqual(sizes.map((_, i) => n - sizes.length + i + 1));
            const [bytes, trim] = await cmd.hmget(KEYS.meta(topic), 'bytes', 'trim');
            snapshots.push({ n, kept: await cmd.lrange(KEYS.log(topic), 0, -1), bytes: Number(bytes), exact: trim!.endsWith(' 0') });
          }
          await expect.poll(() => entriesOn(channel).length).toBe(n);
          await sub.unsubscribe(channel);
          const published = entriesOn(channel);
          for (const { n: upTo, kept, bytes, exact } of snapshots) {
            const sofar = published.slice(0, upTo);
            let cleared = 0;
            sofar.forEach((e, k) => Buffer.byteLength(frame(e)) > budget && (cleared = k + 1));
            const available = keep === 0 ? [] : sofar.slice(cleared);
            expect(kept).toEqual(available.slice(available.length - kept.length));
            expect(kept.length).toBeLessThanOrEqual(keep + Math.ceil(keep / 8));
            expect(frameBytes(kept)).toBeLessThanOrEqual(budget);
            if (kept.length < Math.min(keep, available.length)) {
              const before = available[available.length - kept.length - 1]!;
              expect(frameBytes([before, ...kept])).toBeGreaterThan(budget);
            }
            if (exact) expect(bytes).toBe(frameBytes(kept));
            else expect(bytes).toBeGreaterThanOrEqual(frameBytes(kept));
          }
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

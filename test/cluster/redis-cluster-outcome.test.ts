// On a Redis Cluster a publish answered `unavailable` must surely not have run. The case a review found: the node's
// connection to a topic's master is gone (here: killed by Redis), so ioredis opens a new one for the next command
// and, without care, queues the command on it and writes it once that connection is up, after the node judged it
// "not sent". If Redis then does not answer in time (here: CLIENT PAUSE WRITE, longer than --redis-timeout-ms), the
// publish timed out and was answered `unavailable`, yet ran when the pause ended: the subscriber got it.
// The rule checked here, over every publish of the window: one answered `unavailable` is never delivered.
// And a publish whose connection breaks while it is out may have run: ioredis must not send it again by itself
// (a script that ran would then run twice), so it is answered `outcome_unknown`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS } from '../../src/engine/redis/keys.js';
import { redisCli, requireRedis, startNode, TestRedisCluster, until } from './redis.js';
import { TestClient, type Frame } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('redis cluster publish outcomes', true);
const TIMEOUT_MS = 300;
const PAUSE_MS = 1500;

describe.skipIf(!run)('Redis Cluster: what a publish to a master whose connection is new is answered', () => {
  let rc: TestRedisCluster;
  let node: TestBroker;
  /** A node whose commands wait 5 s: a publish's fate is decided by its connection, not by its timeout. */
  let patient: TestBroker;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    rc = await TestRedisCluster.start(3, 0);
    node = await startNode(rc, { redisTimeoutMs: TIMEOUT_MS });
    patient = await startNode(rc, { redisTimeoutMs: 5000 });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await node?.close();
    await patient?.close();
    await rc?.stop();
  });

  /** A topic whose master does not hold the cluster-wide keys ({g}): pausing it leaves the nodes' own ticks alone. */
  const topicOffG = async (prefix: string): Promise<{ topic: string; port: number }> => {
    const gOwner = await rc.ownerOf(await rc.keyslot(KEYS.nodes));
    for (let i = 0; i < 500; i++) {
      const port = await rc.ownerOf(await rc.keyslot(KEYS.meta(`${prefix}${i}`)));
      if (port !== gOwner) return { topic: `${prefix}${i}`, port };
    }
    throw new Error('no topic off the {g} master');
  };

  /** A publisher and a subscriber of `topic` on `on`, after one message went from one to the other (seq 1). */
  const publisherAndSubscriber = async (on: TestBroker, topic: string): Promise<{ pub: TestClient; sub: TestClient }> => {
    const pub = await TestClient.connect(on.url);
    const sub = await TestClient.connect(on.url);
    clients.push(pub, sub);
    await sub.request({ op: 'sub', topic });
    expect(await pub.request({ op: 'pub', topic, data: 'before' })).toMatchObject({ op: 'ack', seq: 1 });
    await sub.next((f) => f.op === 'msg' && f.data === 'before');
    return { pub, sub };
  };

  it('a publish answered unavailable never reaches a subscriber, even when its master comes back', async () => {
    const { topic, port } = await topicOffG('oc/t');
    const { pub, sub } = await publisherAndSubscriber(node, topic);

    // The nodes' command connections to that master (named sb-<node id>, without a suffix) are killed, and the
    // master then takes no writes for PAUSE_MS: the publishes below need a connection ioredis opens anew.
    // (Both nodes hold one: connections are opened when first used, the nodes' ticks ping every master.)
    let ids: string[] = [];
    await until(async () => {
      ids = [...(await redisCli(port, 'client', 'list')).matchAll(/^id=(\d+) .* name=sb-[0-9a-f]+ /gm)].map((m) => m[1]!);
      return ids.length === 2;
    }, "both nodes' connections to that master", 5000);
    for (const id of ids) await redisCli(port, 'client', 'kill', 'id', id);
    await redisCli(port, 'client', 'pause', String(PAUSE_MS), 'write');

    const answers: Frame[] = [];
    const started = Date.now();
    for (let i = 0; Date.now() - started < PAUSE_MS - TIMEOUT_MS - 200; i++) {
      answers.push(await pub.request({ op: 'pub', topic, data: `p${i}` }, 10_000));
    }
    // Every answer is one of the three, and the window held at least one publish that was not acknowledged.
    for (const a of answers) expect(a.op === 'ack' || (a.op === 'error' && (a.code === 'unavailable' || a.code === 'outcome_unknown'))).toBe(true);
    expect(answers.some((a) => a.op === 'error')).toBe(true);

    // After the pause, whatever ran is delivered; a marker published last tells when everything has come.
    await until(async () => (await pub.request({ op: 'pub', topic, data: 'after' }, 10_000)).op === 'ack', 'publishes to work again', 20_000);
    await sub.next((f) => f.op === 'msg' && f.data === 'after', 15_000);
    const delivered = new Set(sub.all.filter((f) => f.op === 'msg').map((f) => f.data));
    const lies = answers.map((a, i) => ({ a, data: `p${i}` })).filter(({ a, data }) => a.op === 'error' && a.code === 'unavailable' && delivered.has(data));
    expect(lies.map(({ data }) => data)).toEqual([]);
    // And every acknowledged publish was delivered.
    for (const [i, a] of answers.entries()) if (a.op === 'ack') expect(delivered.has(`p${i}`)).toBe(true);
  }, 60_000);

  it('a publish whose connection breaks while it is out is answered outcome_unknown, not sent again', async () => {
    const { topic, port } = await topicOffG('oc/b');
    const { pub, sub } = await publisherAndSubscriber(patient, topic);

    // The master takes no writes; the publish is written and held there (CLIENT LIST: flags=b, cmd=evalsha).
    await redisCli(port, 'client', 'pause', '20000', 'write');
    const answer = pub.request({ op: 'pub', topic, data: 'cut' }, 15_000);
    let held = '';
    await until(async () => {
      held = /^id=(\d+) .* name=sb-[0-9a-f]+ .*flags=b .*cmd=evalsha /m.exec(await redisCli(port, 'client', 'list'))?.[1] ?? '';
      return held !== '';
    }, 'the publish held by the paused master', 10_000);
    // Its connection breaks while it is out; the master takes writes again at once.
    await redisCli(port, 'client', 'kill', 'id', held);
    await redisCli(port, 'client', 'unpause');
    expect(await answer).toMatchObject({ op: 'error', code: 'outcome_unknown' });
    // Nothing ran it twice: each seq came once, in order. (The node's connection to that master is opened again first.)
    await until(async () => (await pub.request({ op: 'pub', topic, data: 'next' }, 10_000)).op === 'ack', 'publishes to work again', 15_000);
    await sub.next((f) => f.op === 'msg' && f.data === 'next', 15_000);
    const seqs = sub.all.filter((f) => f.op === 'msg' && f.topic === topic).map((f) => f.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(sub.all.filter((f) => f.op === 'msg' && f.data === 'cut').length).toBeLessThanOrEqual(1);
    expect(sub.all.filter((f) => f.op === 'msg' && f.data === 'next').length).toBe(1);
  }, 60_000);
});

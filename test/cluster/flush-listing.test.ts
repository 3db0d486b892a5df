// Redis lost its data (a flush) and a node published to a topic it had listed before, ahead of noticing the new life
// (it checks every --node-tick-ms, or at a reconnect): the topic started a new sequence, but the node took it for
// listed in `sb:{g}:topics` and never listed it again (its known topics are forgotten when it notices, and a topic is
// listed at its next publish only). A wildcard resume then never looked at the topic and answered `recovered: true`
// without its messages. Now a publish that starts a topic's sequence lists the topic again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisCli, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('a topic published before the node noticed a flush', true);

describe.skipIf(!run)('cluster: a publish between a flush and the node noticing it', () => {
  let redis: TestRedis;
  let a: TestBroker;
  const clients: TestClient[] = [];
  const connect = async (url: string) => {
    const c = await TestClient.connect(url);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    redis = await TestRedis.start();
    // No tick meanwhile: the node notices the flush only when its connection comes back (below).
    a = await startNode(redis, { nodeTickMs: 60_000, nodeTtlMs: 180_000 });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await a?.close();
    await redis?.stop();
  });

  it('a wildcard resume in the new life replays the topic', async () => {
    const pub = await connect(a.url);
    expect(await pub.request({ op: 'pub', topic: 'fl/x', data: 'old' })).toMatchObject({ op: 'ack', seq: 1 });
    const before = (await pub.request({ op: 'sub', topic: 'fl/other' })).life as string;
    await redisCli(redis.port, 'FLUSHALL');
    expect(await pub.request({ op: 'pub', topic: 'fl/x', data: 'new' })).toMatchObject({ op: 'ack', seq: 1 });
    // The node's connections are dropped: back, it finds the new life.
    await redisCli(redis.port, 'CLIENT', 'KILL', 'TYPE', 'normal');
    let life = before;
    await until(async () => {
      const ack = await pub.request({ op: 'sub', topic: `fl/probe${Date.now()}` }).catch(() => undefined);
      life = typeof ack?.life === 'string' ? ack.life : before;
      return life !== before && life !== '';
    }, 'the node in the new life', 10_000);

    // A client of the new life that saw nothing under fl/#: the message published in it is replayed.
    const resumer = await connect(a.url);
    const ack = await resumer.request({ op: 'sub', topic: 'fl/#', since: {}, life });
    expect(await resumer.request({ op: 'ping', id: 'after' })).toMatchObject({ op: 'pong' }); // the replay is queued before it
    const replayed = resumer.all.filter((f) => f.op === 'msg').map((f) => f.data);
    expect({ ack: { recovered: ack.recovered }, replayed }).toEqual({ ack: { recovered: true }, replayed: ['new'] });
  }, 30_000);
});

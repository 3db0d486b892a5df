// A concrete topic resumed with `since: 0` (the client library sends that, with `life`, for a topic it holds no
// position on) is not vouched for when the broker cannot: the topic was forgotten (its messages lost) and published
// again, or the client's life is not the broker's. A wildcard resume of the same topic said unknown_position; the
// concrete one said recovered:true and replayed only the reborn topic's messages (found by a review helper).
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';
import { redisCli, requireRedis, startNode, TestRedis, until } from './cluster/redis.js';

let broker: TestBroker | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await broker?.close();
  broker = undefined;
});

async function connect(): Promise<TestClient> {
  const c = await TestClient.connect(broker!.url);
  clients.push(c);
  return c;
}

describe('concrete resume with since 0', () => {
  it('a topic forgotten (over --max-topics) while the client was away is not recovered:true', async () => {
    broker = await startTestBroker({ maxTopics: 2 });
    const pub = await connect();
    // The client subscribes to `a` (no message yet), keeps the ack's life, and goes away.
    const first = await connect();
    const ack0 = await first.request({ op: 'sub', topic: 'a' });
    first.close();
    // While it is away: a message on `a`, then `a` is forgotten (two other topics), then `a` comes back.
    await pub.request({ op: 'pub', topic: 'a', data: 'lost' });
    await pub.request({ op: 'pub', topic: 'b', data: 0 });
    await pub.request({ op: 'pub', topic: 'c', data: 0 });
    await pub.request({ op: 'pub', topic: 'a', data: 'kept' });
    const again = await connect();
    // The wildcard resume of the same topic says so:
    const wild = await again.request({ op: 'sub', topic: 'a/#', since: 0, life: ack0.life });
    expect(wild.recovered).toBe(false);
    const ack = await again.request({ op: 'sub', topic: 'a', since: 0, life: ack0.life });
    // 'lost' was published after the client's position (nothing seen) and is gone: not recovered.
    expect(ack.recovered, JSON.stringify(ack)).toBe(false);
    expect(ack.missed).toMatchObject({ a: 'unknown_position' });
  });

  it('a client that saw nothing on `a` before the broker restarted is not told recovered:true', async () => {
    broker = await startTestBroker({});
    const c = await connect();
    const ack0 = await c.request({ op: 'sub', topic: 'a' });
    c.close();
    // While it is away: a message on `a`, then the (in-memory) broker restarts, then another message on `a`.
    let pub = await connect();
    await pub.request({ op: 'pub', topic: 'a', data: 'lost' });
    await broker.close();
    broker = await startTestBroker({});
    pub = await connect();
    await pub.request({ op: 'pub', topic: 'a', data: 'after the restart' });
    // It resumes as the client library does: since 0 (no position on `a`) with the life of its last ack.
    const c2 = await connect();
    const wild = await c2.request({ op: 'sub', topic: 'a/#', since: 0, life: ack0.life });
    expect(wild.recovered).toBe(false);
    const ack = await c2.request({ op: 'sub', topic: 'a', since: 0, life: ack0.life });
    expect(ack.recovered, JSON.stringify(ack)).toBe(false);
  });
});

const withRedis = requireRedis('concrete since-0 resume on a cluster');
describe.skipIf(!withRedis)('concrete resume with since 0, on a cluster', () => {
  it('a client whose life is from before Redis lost its data is not told recovered:true', async () => {
    const redis = await TestRedis.start();
    const node = await startNode(redis, { nodeTickMs: 100 });
    try {
      const c = await TestClient.connect(node.url);
      const ack0 = await c.request({ op: 'sub', topic: 'a' });
      c.close();
      const pub = await TestClient.connect(node.url);
      await pub.request({ op: 'pub', topic: 'a', data: 'lost' });
      await redisCli(redis.port, 'FLUSHALL');
      await until(() => node.hub.life !== ack0.life, 'the node on its new life', 10_000);
      expect(await pub.request({ op: 'pub', topic: 'a', data: 'after' })).toMatchObject({ op: 'ack', seq: 1 });
      const c2 = await TestClient.connect(node.url);
      const ack = await c2.request({ op: 'sub', topic: 'a', since: 0, life: ack0.life });
      expect(ack).toMatchObject({ recovered: false, missed: { a: 'unknown_position' } });
      pub.close();
      c2.close();
    } finally {
      await node.close();
      await redis.stop();
    }
  }, 30_000);
});

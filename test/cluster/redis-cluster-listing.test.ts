// On a Redis Cluster a topic is listed (`sb:{g}:topics`, on the shard of `{g}`) before its first message is numbered
// on its own shard. With the `{g}` shard down and the topic's up, the listing failed unseen and the message was
// published unlisted: a wildcard resume, which finds topics through that set, would never see it and could say
// recovered: true. Such a publish is refused `unavailable` now (the script never ran) (found by a review helper).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRedis, startNode, TestRedisCluster } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { KEYS } from '../../src/engine/redis/keys.js';

const run = requireRedis('a topic listing on a Redis Cluster whose {g} shard is down', true);

describe.skipIf(!run)('Redis Cluster: a topic that cannot be listed is not published', () => {
  let rc: TestRedisCluster;
  let node: TestBroker;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    rc = await TestRedisCluster.start();
    node = await startNode(rc, { redisTimeoutMs: 1000 });
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await node?.close();
    await rc?.stop();
  }, 30_000);

  it('with the {g} shard down, a first publish to a topic on a live shard is unavailable, never published unlisted', async () => {
    const gOwner = await rc.ownerOf(await rc.keyslot(KEYS.nodes));
    // A topic never published, whose keys live on another master than {g}.
    let topic = '';
    for (let i = 0; !topic && i < 200; i++) {
      const t = `lst/t${i}`;
      if ((await rc.ownerOf(await rc.keyslot(KEYS.meta(t)))) !== gOwner) topic = t;
    }
    const pub = await TestClient.connect(node.url);
    clients.push(pub);
    await rc.kill(gOwner);
    const answer = await pub.request({ op: 'pub', topic, data: 'x' }, 15_000);
    expect(answer, JSON.stringify(answer)).toMatchObject({ op: 'error', code: 'unavailable' });
  }, 30_000);
});

// A slot handed over with SETSLOT NODE reaching the old owner (and the others) before the new owner, as a
// resharding tool may send it. A slot-table refresh in that window names the new owner, which still answers MOVED to
// the old one: the node moves the topic's channel there, its SSUBSCRIBE is refused (MOVED), and once the new owner
// takes the slot every refresh names the owner the node already recorded for the channel: it is never subscribed
// again, and the node's subscriber never got another node's messages on the topic (found by a review helper). A
// channel whose SSUBSCRIBE failed is now unplaced, so the next refresh places it again, even on the same master.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS } from '../../src/engine/redis/keys.js';
import { SHARDED } from '../../src/engine/redis/interest.js';
import { redisCli, requireRedis, startNode, TestRedisCluster, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('an SSUBSCRIBE refused with MOVED during a slot hand-over', true);

const rejected = async (port: number) => Number(/cmdstat_ssubscribe:[^\n]*rejected_calls=(\d+)/.exec(await redisCli(port, 'info', 'commandstats'))?.[1] ?? 0);

describe.skipIf(!run)('Redis Cluster: an SSUBSCRIBE refused with MOVED during a slot hand-over', () => {
  let rc: TestRedisCluster;
  let node: TestBroker;
  let pubNode: TestBroker | undefined;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    rc = await TestRedisCluster.start();
    // A slow tick, so that the test can finish the hand-over between two refreshes.
    node = await startNode(rc, { historySize: 200, nodeTickMs: 2000, nodeTtlMs: 8000 });
  }, 60_000);
  afterAll(async () => {
    for (const cl of clients) cl.close();
    await pubNode?.close();
    await node?.close();
    await rc?.stop();
  }, 30_000);

  it('the channel is subscribed on the new owner once it has the slot, and the subscriber gets other nodes\' messages', async () => {
    const topic = 'handover/t';
    const slot = await rc.keyslot(KEYS.meta(topic));
    const from = await rc.ownerOf(slot);
    const to = rc.ports.find((p) => p !== from)!;
    const [channel] = SHARDED.publish(topic);
    const sub = await TestClient.connect(node.url);
    const pub0 = await TestClient.connect(node.url);
    clients.push(sub, pub0);
    await sub.request({ op: 'sub', topic });
    await pub0.request({ op: 'pub', topic, data: 'before' });
    await sub.next((f) => f.op === 'msg' && f.data === 'before');
    const [fromId, toId] = (await Promise.all([redisCli(from, 'cluster', 'myid'), redisCli(to, 'cluster', 'myid')])).map((x) => x.trim()) as [string, string];
    await redisCli(to, 'cluster', 'setslot', String(slot), 'importing', fromId);
    await redisCli(from, 'cluster', 'setslot', String(slot), 'migrating', toId);
    const keys = (await redisCli(from, 'cluster', 'getkeysinslot', String(slot), '1000')).split('\n').filter(Boolean);
    await redisCli(from, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'keys', ...keys);
    // SETSLOT NODE: the old owner and the third master first, the new owner last.
    const before = await rejected(to);
    for (const p of [from, ...rc.ports.filter((x) => x !== to && x !== from)]) await redisCli(p, 'cluster', 'setslot', String(slot), 'node', toId);
    // A refresh asking the old owner or the third master names the new owner, which still says MOVED (importing).
    await until(async () => (await rejected(to)) > before, 'the node\'s SSUBSCRIBE refused by the new owner (MOVED)', 20_000);
    await redisCli(to, 'cluster', 'setslot', String(slot), 'node', toId);
    // Every master names the new owner now: the node's next refresh subscribes the channel there.
    await until(async () => (await redisCli(to, 'pubsub', 'shardchannels', channel)).trim() === channel, 'the channel subscribed on the new owner', 10_000);
    // Another node publishes: the subscriber hears it only if its node listens on the new owner.
    pubNode = await startNode(rc, { historySize: 200 });
    const pub = await TestClient.connect(pubNode.url);
    clients.push(pub);
    const ack = await pub.request({ op: 'pub', topic, data: 'after' });
    expect(ack.op).toBe('ack');
    await sub.next((f) => f.op === 'msg' && f.data === 'after', 8000);
  }, 90_000);
});

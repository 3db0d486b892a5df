// A message of a topic's old epoch that reaches a node after the node moved on to the topic's new epoch (the topic's
// meta was lost, or Redis failed over: its seq restarted) must not take the node back. The node learns of a new epoch
// from the stream (its command connection) as well as from the bus (its subscriber connection), and the two do not
// keep each other's order: here the bus is slow, the node's own publish is not heard back in time, and the node reads
// the stream and moves to the new epoch; then the bus brings an old-epoch message published before the change.
// Before, the node took that stale message's epoch for a newer one and reset its cursor to it: its subscriber got
// the new epoch's messages again (duplicates), after an old-epoch one.
import { beforeAll, describe, expect, it } from 'vitest';
import { KEYS } from '../../src/engine/redis/keys.js';
import { TestClient, type Frame } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { metric, proxiedNodes, redisCli, RedisProxy, requireRedis, TestRedis, until } from './redis.js';

const run = requireRedis('a stale epoch after a new one', true);

describe.skipIf(!run)('a message of an old epoch arriving after the node moved to the new one', () => {
  let redis: TestRedis;
  let proxy: RedisProxy;
  let a: TestBroker;
  let b: TestBroker;
  // Node A through the proxy (its subscriber's replies are held back below), node B straight on Redis.
  const nodes = proxiedNodes({ nodeTtlMs: 20_000 });
  beforeAll(() => void ({ redis, proxy, a, b } = nodes));

  it('is dropped: the subscriber gets each message once, the old epoch before the new one', async () => {
    const sub = await TestClient.connect(`${a.url}?topics=stale/t`);
    const pub = await TestClient.connect(b.url);
    const got = () => sub.all.filter((f) => f.op === 'msg').map((m: Frame) => `${m.data as string}`);
    for (const data of ['E1', 'E2', 'E3']) expect(await pub.request({ op: 'pub', topic: 'stale/t', data })).toMatchObject({ op: 'ack' });
    await until(() => got().length === 3, 'the first three delivered');

    // From now on what Redis sends node A's subscriber connection is held back (its next SUBSCRIBE marks it).
    proxy.holdRepliesOf('sb:t:stale/hold');
    const other = await TestClient.connect(a.url);
    other.send({ op: 'sub', topic: 'stale/hold', id: 'hold' }); // acked once that SUBSCRIBE is answered
    await until(() => proxy.holdingReplies, "node A's subscriber held back");
    const e4 = await pub.request({ op: 'pub', topic: 'stale/t', data: 'E4' });
    expect(e4).toMatchObject({ op: 'ack', seq: 4 });
    await until(() => proxy.holdsReply('"E4"'), 'E4 on its way to node A, held');

    // The topic's meta is lost: its next publish starts a new epoch at seq 1.
    expect(await redisCli(redis.port, 'DEL', KEYS.meta('stale/t'))).toBe('1');
    const f1 = await pub.request({ op: 'pub', topic: 'stale/t', data: 'F1' });
    expect(f1).toMatchObject({ op: 'ack', seq: 1 });
    expect(f1.epoch).not.toBe(e4.epoch);
    // Node A's own publish is not heard back over the bus: after 2 s it reads the stream, finds the new epoch, and
    // delivers F1 and F2 from it before the ack.
    const f2 = await sub.request({ op: 'pub', topic: 'stale/t', data: 'F2' }, 8000);
    expect(f2).toMatchObject({ op: 'ack', seq: 2, epoch: f1.epoch, delivered: 1 });
    expect(got()).toEqual(['E1', 'E2', 'E3', 'F1', 'F2']);

    // The bus catches up: E4 (stale now), then F1 and F2 (delivered already).
    proxy.releaseReplies();
    expect(await other.next((f) => f.id === 'hold')).toMatchObject({ op: 'ack' });
    expect(await pub.request({ op: 'pub', topic: 'stale/t', data: 'F3' })).toMatchObject({ op: 'ack', seq: 3, epoch: f1.epoch });
    await until(() => got().includes('F3'), 'F3 delivered');
    // A ping on node A answers after everything the bus brought before it was handed to its clients.
    await sub.request({ op: 'ping' });
    expect(got()).toEqual(['E1', 'E2', 'E3', 'F1', 'F2', 'F3']);
    // Counted where an operator looks: the late message, dropped on node A; nothing lost, nothing dropped on node B.
    expect(await metric(a, 'switchboard_cluster_messages_stale_total')).toBe(1);
    expect(await metric(a, 'switchboard_cluster_messages_lost_total')).toBe(0);
    expect(await metric(b, 'switchboard_cluster_messages_stale_total')).toBe(0);
    sub.close();
    other.close();
    pub.close();
  });
});

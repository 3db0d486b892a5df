// Interest routing while a node's subscriber connection is away or slow (found by a review helper): a sub acked while
// the node's subscriber is away still gets what is published after its ack; a channel whose SUBSCRIBE is answered
// after its linger does not stay subscribed for good; a channel wanted and released again while its UNSUBSCRIBE is
// out does not wedge the turn of the client that wanted it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { health, metric, proxiedNodes, redisCli, RedisProxy, requireRedis, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('interest routing races');
const LINGER_MS = 100;
const channels = (n: TestBroker) => metric(n, 'switchboard_cluster_channels');

describe.skipIf(!run)('interest routing while the subscriber connection is away or slow', () => {
  let redis: TestRedis;
  let proxy: RedisProxy;
  /** Behind the proxy. */
  let a: TestBroker;
  let b: TestBroker;
  const clients: TestClient[] = [];
  const connect = async (node: TestBroker, query = '') => {
    const c = await TestClient.connect(node.url + query);
    clients.push(c);
    return c;
  };
  const data = (c: TestClient) => c.all.filter((f) => f.op === 'msg').map((f) => f.data);

  const nodes = proxiedNodes({ interestLingerMs: LINGER_MS, nodeTtlMs: 20_000 });
  beforeAll(() => void ({ redis, proxy, a, b } = nodes));
  afterAll(() => {
    for (const c of clients) c.close();
  });

  it('a sub acked while only the subscriber connection is away gets what is published after its ack once it is back', async () => {
    const pub = await connect(b);
    await pub.request({ op: 'pub', topic: 'subdrop/t', data: 'before' }); // the topic stands at seq 1
    const sub = await connect(a);
    // Redis drops the pub/sub connections (client-output-buffer-limit pubsub does that to a node that falls behind)
    // and node A cannot connect again; its command connection stays up.
    proxy.refuseNew();
    await redisCli(redis.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
    await until(async () => (await health(a)) === 'degraded', 'node A degraded', 15_000);
    expect(await sub.request({ op: 'sub', topic: 'subdrop/t' })).toMatchObject({ op: 'ack' });
    await pub.request({ op: 'pub', topic: 'subdrop/t', data: 'during' });
    await proxy.restore();
    await until(async () => (await health(a)) === 'running', 'node A running', 15_000);
    await pub.request({ op: 'pub', topic: 'subdrop/t', data: 'after' });
    await sub.next((f) => f.op === 'msg' && f.data === 'after', 10_000);
    expect(data(sub)).toEqual(['during', 'after']);
    sub.close();
  }, 60_000);

  it('a channel whose SUBSCRIBE is answered after its linger, nobody wanting it any more, is dropped', async () => {
    await until(async () => (await channels(a)) === 0, 'node A listening on nothing', 5000);
    // A channel node A listens on already: released later, its linger ends later, on the same clock.
    const lingering = await connect(a);
    await lingering.request({ op: 'sub', topic: 'slow/linger' });
    proxy.hold('sb:t:slow/t'); // the SUBSCRIBE of the topic's channel is slow to reach Redis
    const sub = await connect(a);
    sub.send({ op: 'sub', topic: 'slow/t', id: 's1' });
    await until(() => proxy.held, 'the SUBSCRIBE held at the proxy', 5000);
    sub.close(); // the only holder leaves while the SUBSCRIBE is out
    await until(() => a.hub.inspect.holders('slow/t').length === 0, 'node A let the holder go', 5000);
    // And the linger passes meanwhile: the other channel, released after, is dropped (its UNSUBSCRIBE written,
    // held behind the SUBSCRIBE).
    await lingering.request({ op: 'unsub', topic: 'slow/linger' });
    await until(() => proxy.holds('sb:t:slow/linger'), 'the later linger over (its UNSUBSCRIBE at the proxy)', 5000);
    proxy.release();
    await until(async () => (await channels(a)) === 0, 'node A listening on nothing again', 5000);
    // So node A no longer takes slow/t's traffic.
    const before = await metric(a, 'switchboard_cluster_messages_received_total');
    const pub = await connect(b);
    await pub.request({ op: 'pub', topic: 'slow/t', data: 'x' });
    const marker = await connect(a);
    await marker.request({ op: 'sub', topic: 'slow/marker' });
    await pub.request({ op: 'pub', topic: 'slow/marker', data: 'm' });
    await marker.next((f) => f.op === 'msg' && f.data === 'm');
    expect(await metric(a, 'switchboard_cluster_messages_received_total')).toBe(before + 1);
    marker.close();
  }, 30_000);

  it('a sub whose channel is being unsubscribed, whose client then leaves, does not wedge that client\'s leave', async () => {
    const first = await connect(a);
    await first.request({ op: 'sub', topic: 'orphan/t' });
    proxy.hold('sb:t:orphan/t'); // the UNSUBSCRIBE, after the linger, is slow to reach Redis
    await first.request({ op: 'unsub', topic: 'orphan/t' });
    await until(() => proxy.held, 'the UNSUBSCRIBE held at the proxy', 5000);
    const ghost = await connect(a, '?name=ghost');
    ghost.send({ op: 'sub', topic: 'orphan/t', id: 'g1' }); // wanted again while it is being dropped
    await until(() => a.hub.inspect.holders('orphan/t').length === 1, 'the ghost holding the filter', 5000);
    ghost.close(); // and its only holder leaves before the UNSUBSCRIBE is answered
    await until(() => ghost.ws.readyState === ghost.ws.CLOSED, 'the ghost closed', 5000);
    proxy.release();
    // Its leave runs in its turn, behind its sub: its record and name go.
    const watcher = await connect(b);
    await until(async () => !(await watcher.request({ op: 'who' })).clients.some((c: { name: string }) => c.name === 'ghost'), 'the ghost gone from who', 10_000);
  }, 30_000);
});

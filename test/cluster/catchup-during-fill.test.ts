// A subscriber connection back while a gap fill of a topic is still waiting for its stream read: the catch-up passed
// over the topic (its cursor was `filling`), and the read in flight had been answered by Redis before the messages
// published during the outage: they were never fetched (until a next message of the topic showed the gap), though the
// node's subscriber missed them (found by a review helper). Now a catch-up during a fill makes it read once more.
import { beforeAll, describe, expect, it } from 'vitest';
import { health, proxiedNodes, RedisProxy, requireRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('catch-up during a fill');
const SUBSCRIBER = /subscribe/i;

describe.skipIf(!run)('a catch-up while a fill is in flight', () => {
  let proxy: RedisProxy;
  let a: TestBroker;
  let b: TestBroker;
  const nodes = proxiedNodes({ nodeTtlMs: 20_000 });
  beforeAll(() => void ({ proxy, a, b } = nodes));

  it('what was published while the subscriber was away reaches the node', async () => {
    const sub = await TestClient.connect(`${a.url}?topics=fill/t`);
    const pub = await TestClient.connect(b.url);
    for (let i = 1; i <= 3; i++) expect(await pub.request({ op: 'pub', topic: 'fill/t', data: i })).toMatchObject({ op: 'ack' });
    const got = () => sub.all.filter((f) => f.op === 'msg').map((m) => m.data as number);
    await until(() => got().length === 3, 'the first three delivered');

    // Outage 1: the subscriber comes back and its catch-up reads fill/t's history; that read's answer is slow.
    proxy.holdRepliesOf(':hist:fill/t');
    proxy.kill(SUBSCRIBER);
    await until(() => proxy.holdingReplies, 'the catch-up read out, its answer held');
    // Outage 2, while that answer is on its way: 4 and 5 are published meanwhile.
    proxy.refuseNew();
    proxy.kill(SUBSCRIBER);
    await until(() => !proxy.hasConnection(SUBSCRIBER), 'the subscriber down');
    for (const i of [4, 5]) expect(await pub.request({ op: 'pub', topic: 'fill/t', data: i })).toMatchObject({ op: 'ack' });
    await proxy.restore();
    await until(() => proxy.hasConnection(SUBSCRIBER), 'the subscriber back', 5000);
    await until(async () => (await health(a)) === 'running', 'node A listening again (its catch-up ran)', 5000);
    proxy.releaseReplies();

    await until(() => got().length >= 5, `4 and 5 fetched from the history (got ${JSON.stringify(got())})`, 5000);
    expect(got()).toEqual([1, 2, 3, 4, 5]);
    sub.close();
    pub.close();
  });
});

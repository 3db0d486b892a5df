// A node that dies (or is cut off for good) between its client's CLAIM_NAME (which writes the client's record) and
// the next write of that record: the client is in the node's client set (sb:{g}:nc:<node>) from the claim on, so the
// survivor's REAP ends it. It was not: the record and the name stayed in Redis for ever (`who` listed a client nobody
// held; the name was never free again). Found by a review helper.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxiedNodes, REAP_GUARD_MS, redisCli, RedisProxy, requireRedis, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('a node dead between a join claim and its record', true);

describe.skipIf(!run)('cluster: a node dead between a join claim and its record', () => {
  let redis: TestRedis;
  let proxy: RedisProxy;
  let a: TestBroker;
  let b: TestBroker;
  let nodeA = '';
  const clients: TestClient[] = [];

  const nodes = proxiedNodes({}, {}, async (n) => {
    nodeA = await redisCli(n.redis.port, 'SRANDMEMBER', 'sb:{g}:nodes'); // the only node yet
  });
  beforeAll(() => void ({ redis, proxy, a, b } = nodes));
  afterAll(() => {
    for (const c of clients) c.close();
  });

  it('its client is reaped: name freed, record gone', async () => {
    expect(nodeA).not.toBe('');
    // The claim goes through; the next write of the client's record (the one that puts it in A's set) is held.
    proxy.whenForwarded('zoe5', () => proxy.hold('"name":"zoe5"'));
    const joining = TestClient.connect(a.url + '?name=zoe5').catch(() => undefined);
    await until(() => proxy.held, 'the record write held at the proxy', 5000);
    expect(await redisCli(redis.port, 'HGET', 'sb:{g}:names', 'zoe5')).toMatch(/^c\d+$/);
    await proxy.cut(); // A is gone for good (its heartbeat thread too)
    proxy.release();
    const zoe = await joining;
    if (zoe) clients.push(zoe);
    await until(async () => (await redisCli(redis.port, 'SISMEMBER', 'sb:{g}:nodes', nodeA)) === '0', 'A reaped', REAP_GUARD_MS);
    await until(async () => (await redisCli(redis.port, 'HGET', 'sb:{g}:names', 'zoe5')) === '', 'zoe5 freed by the reap', 5000);
    const other = await TestClient.connect(b.url + '?name=zoe5');
    clients.push(other);
    expect(other.hello.client.name).toBe('zoe5');
    const who = await other.request({ op: 'who' });
    expect((who.clients as { name: string }[]).map((c) => c.name)).toEqual(['zoe5']);
  }, 60_000);
});

// A Redis that hangs (SIGSTOP: connections open, nothing answered) is not a Redis that is gone. A publish whose
// script was sent but not answered may run when Redis wakes: it answers `outcome_unknown` (HTTP 504), never
// `unavailable` (which promises nothing happened), and the node reports itself degraded within a few of its
// --redis-timeout-ms, until Redis answers again. The test shows the publish did happen after all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { health, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('cluster hung redis');

describe.skipIf(!run)('cluster: a hung Redis', () => {
  let redis: TestRedis;
  let node: TestBroker;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    redis = await TestRedis.start();
    node = await startNode(redis, { redisTimeoutMs: 300, nodeTickMs: 100, nodeTtlMs: 5000 });
  });
  afterAll(async () => {
    redis?.resume();
    for (const c of clients) c.close();
    await node?.close();
    await redis?.stop();
  });

  it('a publish Redis did not answer is outcome_unknown (it may have happened, and did); the node is degraded meanwhile', async () => {
    const sub = await TestClient.connect(node.url);
    const pub = await TestClient.connect(node.url);
    clients.push(sub, pub);
    await sub.request({ op: 'sub', topic: 'hung/t' });
    expect(await pub.request({ op: 'pub', topic: 'hung/t', data: 'before' })).toMatchObject({ op: 'ack', seq: 1 });

    redis.pause();
    const during = await pub.request({ op: 'pub', topic: 'hung/t', data: 'during' });
    expect(during).toMatchObject({ op: 'error', code: 'outcome_unknown' });
    const api = await fetch(`${node.httpUrl}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'hung/t', data: 'api' }) });
    expect(api.status).toBe(504);
    expect(await api.json()).toMatchObject({ error: 'outcome_unknown' });
    await until(async () => (await health(node)) === 'degraded', '/healthz degraded while Redis hangs', 5000);

    redis.resume();
    await until(async () => (await health(node)) === 'running', '/healthz running once Redis answers', 10_000);
    // Both "unknown" publishes ran when Redis woke: had they been answered unavailable, a retry would double them.
    const after = await pub.request({ op: 'pub', topic: 'hung/t', data: 'after' });
    expect(after).toMatchObject({ op: 'ack', seq: 4 });
    await sub.next((f) => f.op === 'msg' && f.data === 'after');
    expect(sub.all.filter((f) => f.op === 'msg').map((f) => `${f.seq}:${f.data}`)).toEqual(['1:before', '2:during', '3:api', '4:after']);
  }, 30_000);
});

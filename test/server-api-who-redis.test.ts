// GET /api/who on the Redis engine when the directory read fails: the error is the API's answer, with the status the
// rest of the server API gives that code (503 unavailable, 500 internal, 504 outcome_unknown), never 400 ("your
// request was bad") and never a request left hanging.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisCli, requireRedis, startNode, TestRedis } from './cluster/redis.js';
import { TestClient } from './helpers/client.js';
import type { TestBroker } from './helpers/broker.js';

const run = requireRedis('server api who on redis', true);
const KEY = 'admin-key';

describe.skipIf(!run)('GET /api/who when Redis fails the read', () => {
  let redis: TestRedis;
  let node: TestBroker;
  const who = async () => {
    const res = await fetch(`${node.httpUrl}/api/who`, { headers: { authorization: `Bearer ${KEY}` }, signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: (await res.json()) as { error?: string; clients?: unknown[] } };
  };
  beforeAll(async () => {
    redis = await TestRedis.start();
    node = await startNode(redis, { apiKey: KEY, redisTimeoutMs: 500 });
  });
  afterAll(async () => {
    redis?.resume();
    await node?.close();
    await redis?.stop();
  });

  it('a record the node cannot read is its fault, not the caller’s: 500 internal', async () => {
    const c = await TestClient.connect(node.url);
    expect(await who()).toMatchObject({ status: 200, body: { clients: [expect.objectContaining({ id: c.hello.client.id })] } });
    await redisCli(redis.port, 'hset', 'sb:{g}:clients', 'c999999', 'not json');
    try {
      expect(await who()).toMatchObject({ status: 500, body: { error: 'internal' } });
    } finally {
      await redisCli(redis.port, 'hdel', 'sb:{g}:clients', 'c999999');
    }
    c.close();
  });

  it('a hung Redis: answered 503 unavailable once the read times out (a read: nothing was done), never left hanging', async () => {
    redis.pause();
    try {
      expect(await who()).toMatchObject({ status: 503, body: { error: 'unavailable' } });
    } finally {
      redis.resume();
    }
  });

  it('calls at once on a hung Redis: each is answered once its own read times out, not after every earlier call’s', async () => {
    redis.pause();
    try {
      const start = Date.now();
      const answers = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const res = await fetch(`${node.httpUrl}/api/who`, { headers: { authorization: `Bearer ${KEY}` }, signal: AbortSignal.timeout(10_000) });
          return { status: res.status, ms: Date.now() - start };
        }),
      );
      expect(answers.map((a) => a.status)).toEqual(Array(8).fill(503));
      // One --redis-timeout-ms (500) and some slack each: one after another, the last waited for 8 of them (4 s).
      expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(2000);
    } finally {
      redis.resume();
    }
  });
});

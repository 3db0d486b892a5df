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

  it('a call is not held behind another call’s read on a hung Redis: over --redis-max-inflight it is refused at once', async () => {
    // One read may wait on Redis at once, and a read waits longer than this test needs: a call refused for that bound
    // is answered while the other still waits, unless it is queued behind it (as every call was, through the API's one
    // shared session: on a hung Redis each waited for every earlier call's timeout).
    const narrow = await startNode(redis, { apiKey: KEY, redisTimeoutMs: 5000, redisMaxInflight: 1 });
    const ask = () =>
      fetch(`${narrow.httpUrl}/api/who`, { headers: { authorization: `Bearer ${KEY}` }, signal: AbortSignal.timeout(10_000) }).then(async (res) => ({ status: res.status, body: (await res.json()) as { error?: string; message?: string } }));
    try {
      redis.pause();
      const calls = [ask(), ask()];
      try {
        // Whichever reaches the node second is refused at once; the other waits for Redis (or its 5 s timeout).
        expect(await Promise.race(calls)).toMatchObject({ status: 503, body: { error: 'unavailable', message: expect.stringMatching(/^over 1 requests waiting on Redis/) } });
      } finally {
        redis.resume();
      }
      // The other one, answered once Redis is back.
      expect((await Promise.all(calls)).map((a) => a.status).sort()).toEqual([200, 503]);
    } finally {
      await narrow.close();
    }
  });
});

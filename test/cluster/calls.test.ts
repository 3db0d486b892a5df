// Node calls (src/engine/redis/calls.ts) on one Redis: what a call is answered when nobody can have received it. A
// call to a node whose subscriber is not listening reaches nobody (PUBLISH counts 0 receivers): `unavailable` (HTTP
// 503, not carried out), not a wait for an answer that cannot come and then 504; a direct to a client of that node is
// `unavailable` too, not `not_found` (the client is there). And a call to a node that is gone leaves nothing behind:
// 10,000 of them used to fill the table of calls waiting for answers, after which every call was refused as busy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger } from '../../src/log.js';
import { NodeCalls } from '../../src/engine/redis/calls.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { health, RedisProxy, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('cluster node calls');
const log = createLogger('silent', false);

describe.skipIf(!run)('node calls', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('calls to a node that is gone, 10,000 and more, leave calls to a live node answered', async () => {
    const cmd = new Redis(redis.url);
    const caller = new NodeCalls(redis.url, cmd, 'caller', log);
    const callee = new NodeCalls(redis.url, cmd, 'callee', log);
    try {
      await Promise.all([caller.start(), callee.start()]);
      callee.handle('echo', async (body) => body);
      await cmd.set(KEYS.heartbeat('callee'), '1');
      for (let round = 0; round < 11; round++) {
        const answers = await Promise.all(Array.from({ length: 1000 }, () => caller.call('ghost', 'echo', 'x', 1000)));
        expect(new Set(answers.map((a) => (a.ok ? 'ok' : a.why)))).toEqual(new Set(['gone']));
      }
      expect(await caller.call('callee', 'echo', 'still here', 5000)).toEqual({ ok: true, answer: 'still here' });
    } finally {
      caller.close();
      callee.close();
      cmd.disconnect();
    }
  });

  describe('to a node that is not listening (its Redis connections cut, its heartbeat not expired yet)', () => {
    let caller: TestBroker;
    let proxy: RedisProxy;
    let target: TestBroker;
    let far: TestClient;
    beforeAll(async () => {
      caller = await startNode(redis, { redisTimeoutMs: 1000, nodeTickMs: 100, nodeTtlMs: 60_000 });
      proxy = await RedisProxy.start(redis.port);
      target = await startNode(redis, { redisUrl: proxy.url, redisTimeoutMs: 1000, nodeTickMs: 100, nodeTtlMs: 60_000 });
      far = await TestClient.connect(`${target.url}?name=far-away`);
      await proxy.cut();
      await until(async () => (await health(target)) === 'degraded', 'the target node without Redis', 10_000);
    });
    afterAll(async () => {
      far?.close();
      await caller?.close();
      await target?.close();
    });

    it('a server API command to its client: 503, and it was not carried out', async () => {
      const res = await fetch(`${caller.httpUrl}/api/clients/disconnect`, { method: 'POST', body: JSON.stringify({ client: 'far-away' }) });
      expect({ status: res.status, body: await res.json() }).toMatchObject({ status: 503, body: { error: 'unavailable' } });
      expect(await far.request({ op: 'ping' })).toMatchObject({ op: 'pong' }); // still connected
    });

    it('a direct to its client: unavailable (not not_found: the client is there), and nothing was delivered', async () => {
      const sender = await TestClient.connect(caller.url);
      expect(await sender.request({ op: 'send', to: 'far-away', data: 'hello' })).toMatchObject({ op: 'error', code: 'unavailable' });
      expect(await far.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
      expect(far.all.filter((f) => f.op === 'direct')).toEqual([]);
      sender.close();
    });
  });

  describe('during a failover that the nodes follow at different times (one Redis, then its replica promoted)', () => {
    let r2: TestRedis;
    let pa: RedisProxy;
    let pb: RedisProxy;
    let a: TestBroker;
    let b: TestBroker;
    const admins: Redis[] = [];
    beforeAll(async () => {
      r2 = await TestRedis.start();
      pa = await RedisProxy.start(redis.port);
      pb = await RedisProxy.start(redis.port);
      a = await startNode(redis, { redisUrl: pa.url, redisTimeoutMs: 1000, nodeTtlMs: 60_000, nodeTickMs: 100 });
      b = await startNode(redis, { redisUrl: pb.url, nodeTtlMs: 60_000, nodeTickMs: 100 });
    });
    afterAll(async () => {
      for (const x of admins) x.disconnect();
      await a?.close();
      await b?.close();
      await pa?.cut();
      await pb?.cut();
      await r2?.stop();
    });

    it('a direct and a server API command that a node still on the old master (now a replica) receives are not answered unavailable', async () => {
      const far = await TestClient.connect(`${b.url}?name=far-b`);
      const old = new Redis(redis.url);
      const promoted = new Redis(r2.url);
      admins.push(old, promoted);
      // Full syncs at once (Redis waits 5 s for more replicas by default).
      for (const r of [old, promoted]) await r.config('SET', 'repl-diskless-sync-delay', '0');
      await promoted.replicaof('127.0.0.1', String(redis.port));
      await until(async () => /master_link_status:up/.test(await promoted.info('replication')), 'the replica in sync');
      await until(async () => (await promoted.exists(KEYS.names)) === 1, 'the names replicated');
      // The failover: the replica promoted, the old master its replica; node A follows at once, node B not yet.
      await promoted.replicaof('NO', 'ONE');
      await old.replicaof('127.0.0.1', String(r2.port));
      await until(async () => /master_link_status:up/.test(await old.info('replication')), 'the old master a replica');
      await pa.cut();
      await pa.restore(r2.port);
      await until(async () => (await health(a)) === 'running', 'node A on the new master', 15_000);
      // The new master counts no receiver of B's channel: B's subscriber is on its replica, which gets it all the same.
      const sender = await TestClient.connect(a.url);
      const answer = await sender.request({ op: 'send', to: 'far-b', data: 'via the replica' });
      await until(() => far.all.some((f) => f.op === 'direct' && f.data === 'via the replica'), 'the direct delivered');
      expect(answer).toMatchObject({ op: 'error', code: 'outcome_unknown' });
      const res = await fetch(`${a.httpUrl}/api/clients/disconnect`, { method: 'POST', body: JSON.stringify({ client: 'far-b' }) });
      await far.closed; // carried out by node B
      expect(res.status).not.toBe(503);
      sender.close();
    });
  });
});

// One master of a 3-master Redis Cluster killed (not the one of the {g} keys): a node call's PUBLISH is keyless and
// any live master can carry it (a classic PUBLISH reaches every node's subscribers). Server API commands and SSE POSTs
// to the other node keep working: the call goes out on a master whose connection is ready. (Sent to a random master,
// a call that met the dead one's connection was refused unsent, 503, in about one of seven.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeIdOf, requireRedis, startNode, subscriberPortOf, TestRedisCluster } from './redis.js';
import { TestClient } from '../helpers/client.js';
import { SseClient } from '../helpers/sse-client.js';
import type { TestBroker } from '../helpers/broker.js';
import { KEYS } from '../../src/engine/redis/keys.js';

const run = requireRedis('redis cluster node calls', true);

describe.skipIf(!run)('Redis Cluster, one master dead: node calls', () => {
  let rc: TestRedisCluster;
  let a: TestBroker;
  let b: TestBroker;
  let victim = 0;
  beforeAll(async () => {
    rc = await TestRedisCluster.start();
    a = await startNode(rc);
    b = await startNode(rc);
    const gOwner = await rc.ownerOf(await rc.keyslot(KEYS.nodes));
    // Not {g}'s master, nor one a node's subscribers (engine bus) sit on: only the command connections meet it.
    const subs = await Promise.all([a, b].map(async (n) => subscriberPortOf(rc, await nodeIdOf(n))));
    victim = rc.ports.find((p) => p !== gOwner && !subs.includes(p)) ?? rc.ports.find((p) => p !== gOwner)!;
  }, 60_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await rc?.stop();
  }, 30_000);

  it('server API subscribe to a client on the other node: 20 of 20 answered 200', async () => {
    const y = await TestClient.connect(`${b.url}?name=api-target`);
    // Every master's connection opened (a command of each slot range), as on a busy node.
    for (let i = 0; i < 30; i++) await fetch(`${a.httpUrl}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: `warm/${i}`, data: i }) });
    await rc.kill(victim);
    const statuses: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${a.httpUrl}/api/clients/subscribe`, { method: 'POST', body: JSON.stringify({ client: 'api-target', topic: `api/t${i}` }) });
      statuses.push(`${r.status} ${((await r.json()) as { error?: string }).error ?? ''}`.trim());
    }
    expect(statuses).toEqual(Array(20).fill('200'));
    y.close();
  }, 60_000);

  it('SSE POSTs through the other node: 20 of 20 answered 202', async () => {
    const sse = await SseClient.open(a.httpUrl, '/sse');
    const statuses: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${b.httpUrl}${sse.post}`, { method: 'POST', body: `{"op":"ping","id":"p${i}"}` });
      statuses.push(`${r.status} ${((await r.json()) as { error?: string }).error ?? ''}`.trim());
    }
    expect(statuses).toEqual(Array(20).fill('202'));
    sse.req.destroy();
  }, 60_000);
});

// SSE on the Redis cluster engine: a stream on node A hears publishes made on node B, shows in B's `who` and
// presence, and resumes through Last-Event-ID on node B exactly (the cursor holds topic positions, which every node
// shares). A POST reaches only the node holding its stream (docs/sse.md, Not there yet).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRedis, startNode, TestRedis } from '../cluster/redis.js';
import { TestClient } from '../helpers/client.js';
import { SseClient } from '../helpers/sse-client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('sse cluster');

describe.skipIf(!run)('SSE on two nodes of one Redis', () => {
  let redis: TestRedis;
  let a: TestBroker;
  let b: TestBroker;
  beforeAll(async () => {
    redis = await TestRedis.start();
    a = await startNode(redis, { historySize: 50 });
    b = await startNode(redis, { historySize: 50 });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('a stream on A gets B’s publishes once, in order, is seen by B, and resumes on B from its last event id', async () => {
    const watcher = await TestClient.connect(b.url);
    await watcher.request({ op: 'sub', topic: 'plant/#', presence: true });
    const sse = await SseClient.open(a.httpUrl, '/sse?topics=plant/%23&name=panel');
    await watcher.next((f) => f.op === 'event' && f.event === 'join' && f.client.name === 'panel');
    const who = await watcher.request({ op: 'who', topic: 'plant/#' });
    expect(who.clients).toContainEqual(expect.objectContaining({ name: 'panel', transport: 'sse' }));

    const pub = await TestClient.connect(b.url);
    for (let i = 1; i <= 3; i++) await pub.request({ op: 'pub', topic: 'plant/boiler', data: i });
    await sse.frame((f) => f.op === 'msg' && f.seq === 3);
    const cursor = sse.lastEventId;
    // A POST addressed to A's stream but sent to B finds no stream there.
    expect((await fetch(`${b.httpUrl}${sse.post}`, { method: 'POST', body: '{"op":"ping"}' })).status).toBe(404);
    sse.close();
    await watcher.next((f) => f.op === 'event' && f.event === 'leave' && f.client.name === 'panel');

    for (let i = 4; i <= 6; i++) await pub.request({ op: 'pub', topic: 'plant/boiler', data: i });
    const again = await SseClient.open(b.httpUrl, '/sse', { 'last-event-id': cursor });
    await pub.request({ op: 'pub', topic: 'plant/boiler', data: 7 });
    await again.frame((f) => f.op === 'msg' && f.seq === 7);
    expect(again.all.filter((e) => e.event === 'notRecovered')).toEqual([]);
    expect(again.all.filter((e) => e.frame?.op === 'msg').map((e) => e.frame!.data)).toEqual([4, 5, 6, 7]);
    expect(sse.all.filter((e) => e.frame?.op === 'msg').map((e) => e.frame!.data)).toEqual([1, 2, 3]);
    again.close();
    pub.close();
    watcher.close();
  });
});

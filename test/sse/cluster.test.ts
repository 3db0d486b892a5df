// SSE on the Redis cluster engine: a stream on node A hears publishes made on node B, shows in B's `who` and
// presence, and resumes through Last-Event-ID on node B exactly (the cursor holds topic positions, which every node
// shares). A POST may reach any node: another node carries it to the stream's node and answers what it answered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRedis, startNode, TestRedis } from '../cluster/redis.js';
import { TestClient } from '../helpers/client.js';
import { SseClient } from '../helpers/sse-client.js';
import type { TestBroker } from '../helpers/broker.js';
import { SignJWT } from 'jose';

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
    // A POST addressed to A's stream but sent to B reaches the stream on A: its answers come on the stream.
    const viaB = await fetch(`${b.httpUrl}${sse.post}`, { method: 'POST', body: '{"op":"ping","id":"p1"}\n{"op":"sub","topic":"valve/+","id":"s1"}' });
    expect({ status: viaB.status, body: await viaB.json() }).toEqual({ status: 202, body: { accepted: 2 } });
    expect(await sse.frame((f) => f.id === 'p1')).toMatchObject({ op: 'pong', id: 'p1' });
    expect(await sse.frame((f) => f.id === 's1')).toMatchObject({ op: 'ack', id: 's1' });
    await pub.request({ op: 'pub', topic: 'valve/3', data: 'open' });
    expect(await sse.frame((f) => f.op === 'msg' && f.topic === 'valve/3')).toMatchObject({ data: 'open' });
    // A stream id that names A but that A does not hold: A's own answer, through B.
    const unknown = await fetch(`${b.httpUrl}/sse?stream=${sse.stream.split('.')[0]}.nosuchstream`, { method: 'POST', body: '{"op":"ping"}' });
    expect({ status: unknown.status, code: ((await unknown.json()) as { error: string }).error }).toEqual({ status: 404, code: 'not_found' });
    sse.close();
    await watcher.next((f) => f.op === 'event' && f.event === 'leave' && f.client.name === 'panel');

    for (let i = 4; i <= 6; i++) await pub.request({ op: 'pub', topic: 'plant/boiler', data: i });
    const again = await SseClient.open(b.httpUrl, '/sse', { 'last-event-id': cursor });
    await pub.request({ op: 'pub', topic: 'plant/boiler', data: 7 });
    await again.frame((f) => f.op === 'msg' && f.seq === 7);
    expect(again.all.filter((e) => e.event === 'notRecovered')).toEqual([]);
    expect(again.all.filter((e) => e.frame?.op === 'msg').map((e) => e.frame!.data)).toEqual([4, 5, 6, 7]);
    expect(sse.all.filter((e) => e.frame?.op === 'msg' && e.frame.topic === 'plant/boiler').map((e) => e.frame!.data)).toEqual([1, 2, 3]);
    again.close();
    pub.close();
    watcher.close();
  });

  it('a POST for a stream of a node that is gone answers 404 (its streams closed with it)', async () => {
    const c = await startNode(redis, { historySize: 50 });
    const sse = await SseClient.open(c.httpUrl, '/sse?topics=x');
    await c.close();
    const res = await fetch(`${a.httpUrl}${sse.post}`, { method: 'POST', body: '{"op":"ping"}' });
    expect({ status: res.status, code: ((await res.json()) as { error: string }).error }).toEqual({ status: 404, code: 'not_found' });
    sse.close();
  });
});

describe.skipIf(!run)('SSE POST through another node, with tokens', () => {
  const secret = 'sse-cluster-secret-of-32-bytes-at-least!';
  let redis: TestRedis;
  let a: TestBroker;
  let b: TestBroker;
  beforeAll(async () => {
    redis = await TestRedis.start();
    a = await startNode(redis, { authSecret: secret });
    b = await startNode(redis, { authSecret: secret });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('the token is checked: another client\'s token is refused (403), none is refused (401), the stream\'s own goes through', async () => {
    const own = await sign('panel');
    const sse = await SseClient.open(a.httpUrl, `/sse?token=${own}`);
    const post = (headers: Record<string, string>) => fetch(`${b.httpUrl}${sse.post}`, { method: 'POST', body: '{"op":"ping","id":"t"}', headers });
    const other = await post({ authorization: `Bearer ${await sign('intruder')}` });
    expect({ status: other.status, code: ((await other.json()) as { error: string }).error }).toEqual({ status: 403, code: 'forbidden' });
    const none = await post({});
    expect(none.status).toBe(401);
    const ok = await post({ authorization: `Bearer ${own}` });
    expect(ok.status).toBe(202);
    expect(await sse.frame((f) => f.id === 't')).toMatchObject({ op: 'pong' });
    expect(sse.all.filter((e) => e.frame?.op === 'pong')).toHaveLength(1);
    sse.close();
  });

  async function sign(sub: string): Promise<string> {
    return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('10m').sign(new TextEncoder().encode(secret));
  }
});

// The server API an application runs on: batch publish (one result each), idempotency keys, disconnect by id or
// name with code and reason, server-side subscribe and unsubscribe, who (presence) of a topic and of everyone,
// paginated clients and topics, all behind the admin key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';

let broker: TestBroker;
const KEY = 'admin-key';
const api = async (method: string, path: string, body?: unknown, key = KEY) => {
  const res = await fetch(`${broker.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${key}` }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
};

beforeAll(async () => {
  broker = await startTestBroker({ apiKey: KEY });
});
afterAll(() => broker?.close());

describe('server API', () => {
  it('needs the admin key on every route', async () => {
    for (const [method, path] of [['POST', '/api/publish/batch'], ['POST', '/api/clients/disconnect'], ['POST', '/api/clients/subscribe'], ['POST', '/api/clients/unsubscribe'], ['GET', '/api/who']] as const) {
      expect((await api(method, path, method === 'POST' ? {} : undefined, 'wrong')).status, path).toBe(401);
    }
  });

  it('batch publish: one result per message, in order, bad ones refused alone', async () => {
    const c = await TestClient.connect(`${broker.url}?topics=b/%23`);
    const { status, body } = await api('POST', '/api/publish/batch', {
      messages: [{ topic: 'b/1', data: 'one' }, { topic: 'b/+', data: 'x' }, { topic: 'b/1', data: 'two' }, { data: 1 }, { topic: 'b/2', data: null }],
    });
    expect(status).toBe(200);
    expect(body.results).toEqual([
      { seq: 1, epoch: expect.any(String), delivered: 1 },
      { error: 'bad_topic', message: expect.any(String) },
      { seq: 2, epoch: expect.any(String), delivered: 1 },
      { error: 'bad_topic', message: expect.any(String) },
      { seq: 1, epoch: expect.any(String), delivered: 1 },
    ]);
    expect([(await c.next((f) => f.op === 'msg')).data, (await c.next((f) => f.op === 'msg')).data, (await c.next((f) => f.op === 'msg')).data]).toEqual(['one', 'two', null]);
    expect((await api('POST', '/api/publish/batch', { messages: [] })).status).toBe(400);
    // Each message is held to --max-payload, as POST /api/publish is (the batch's body may be 16 times it).
    const big = 'x'.repeat(broker.config.maxPayload);
    const sized = await api('POST', '/api/publish/batch', { messages: [{ topic: 'b/1', data: big }, { topic: 'b/1', data: 'three' }] });
    expect(sized.body.results).toEqual([{ error: 'too_large', message: expect.stringContaining('--max-payload') }, { seq: 3, epoch: expect.any(String), delivered: 1 }]);
    expect((await c.next((f) => f.op === 'msg')).data).toBe('three');
    c.ws.close();
  });

  it('an idempotency key publishes once: a retry gets the first position, delivers nothing and says duplicate', async () => {
    const c = await TestClient.connect(`${broker.url}/idem`);
    const first = await api('POST', '/api/publish', { topic: 'idem', data: 1, idempotencyKey: 'order-17' });
    const again = await api('POST', '/api/publish', { topic: 'idem', data: 1, idempotencyKey: 'order-17' });
    expect(first.body).toMatchObject({ seq: 1, delivered: 1 });
    expect(again.body).toEqual({ ...first.body, delivered: 0, duplicate: true });
    const header = await fetch(`${broker.httpUrl}/api/publish`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'idempotency-key': 'order-17' }, body: JSON.stringify({ topic: 'idem', data: 1 }) });
    expect(((await header.json()) as any).duplicate).toBe(true);
    await c.next((f) => f.op === 'msg');
    expect(await c.quiet((f) => f.op === 'msg')).toBe(true);
    c.ws.close();
  });

  it('disconnects a client by name or id, with code and reason; 404 for nobody', async () => {
    const a = await TestClient.connect(`${broker.url}?name=kicked`);
    expect((await api('POST', '/api/clients/disconnect', { client: 'kicked', code: 4100, reason: 'account closed' })).body).toMatchObject({ disconnected: { name: 'kicked' }, code: 4100 });
    expect(await a.closed).toEqual({ code: 4100, reason: 'account closed' });
    const b = await TestClient.connect(broker.url);
    await api('POST', '/api/clients/disconnect', { client: b.hello.client.id });
    expect(await b.closed).toEqual({ code: 4004, reason: 'disconnected by the server' });
    expect((await api('POST', '/api/clients/disconnect', { client: 'nobody' })).status).toBe(404);
    expect((await api('POST', '/api/clients/disconnect', { client: 'x', code: 1011 })).status).toBe(400);
  });

  it('subscribes and unsubscribes a client server-side', async () => {
    const c = await TestClient.connect(`${broker.url}?name=panel`);
    expect((await api('POST', '/api/clients/subscribe', { client: 'panel', topic: 'alarm/#' })).body).toMatchObject({ subscribed: true });
    await api('POST', '/api/publish', { topic: 'alarm/7', data: 'hot' });
    expect((await c.next((f) => f.op === 'msg')).data).toBe('hot');
    await api('POST', '/api/clients/unsubscribe', { client: 'panel', topic: 'alarm/#' });
    expect((await api('POST', '/api/publish', { topic: 'alarm/7', data: 'again' })).body.delivered).toBe(0);
    expect((await api('POST', '/api/clients/subscribe', { client: 'panel', topic: 'a/#/b' })).status).toBe(400);
    c.ws.close();
  });

  it('who of a topic and of everyone, paginated; clients and topics paginated', async () => {
    const cs = await Promise.all([1, 2, 3].map((i) => TestClient.connect(`${broker.url}/room/9?name=w${i}`)));
    const page1 = await api('GET', '/api/who?topic=room/9&limit=2');
    expect(page1.body.clients.map((c: any) => c.name)).toEqual(['w1', 'w2']);
    expect(page1.body.clients[0].addr).toMatch(/^127\.0\.0\.1:/);
    const page2 = await api('GET', `/api/who?topic=room/9&limit=2&cursor=${page1.body.next}`);
    expect(page2.body).toEqual({ clients: [expect.objectContaining({ name: 'w3' })] });
    expect((await api('GET', '/api/who?topic=room/%2B/%23x')).status).toBe(400);
    const all = await api('GET', '/api/clients?limit=2');
    expect(all.body.clients).toHaveLength(2);
    const rest = await api('GET', `/api/clients?limit=100&cursor=${all.body.next}`);
    expect(rest.body.clients.length + 2).toBe(all.body.total);
    expect(rest.body.next).toBeUndefined();
    const topics = await api('GET', '/api/topics?limit=1');
    expect(topics.body.topics).toHaveLength(1);
    expect(topics.body.next).toBe('1');
    for (const c of cs) c.ws.close();
  });
});

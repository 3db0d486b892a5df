// Publishing exactly once (docs/protocol.md): a `pub` with an idempotency `key` is numbered and delivered once per
// (topic, key) within the key's window. A retry (the ack was lost, the connection dropped, the answer was
// outcome_unknown) is acked with the first publish's position and `duplicate: true` and delivers nothing; the same
// key on another topic is another publish. Over WebSocket, TCP JSON lines and the HTTP API, which share the keys.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';
import { LineClient } from './helpers/line-client.js';

describe('pub with an idempotency key', () => {
  let broker: TestBroker;
  const clients: { close(): void }[] = [];
  const connect = async () => {
    const c = await TestClient.connect(broker.url);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    broker = await startTestBroker();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await broker?.close();
  });

  it('a retried pub is acked duplicate with the first position, and the subscriber gets the message once', async () => {
    const sub = await connect();
    await sub.request({ op: 'sub', topic: 'orders/1' });
    const pub = await connect();
    const first = await pub.request({ op: 'pub', topic: 'orders/1', data: { n: 1 }, key: 'order-1-created' });
    expect(first).toMatchObject({ op: 'ack', seq: 1, delivered: 1 });
    expect(first.duplicate).toBeUndefined();
    // The retry comes from another connection (the first one dropped before its ack): still the same publish.
    const again = await (await connect()).request({ op: 'pub', topic: 'orders/1', data: { n: 1 }, key: 'order-1-created' });
    expect(again).toMatchObject({ op: 'ack', seq: 1, epoch: first.epoch, delivered: 0, duplicate: true });
    const next = await pub.request({ op: 'pub', topic: 'orders/1', data: { n: 2 }, key: 'order-1-paid' });
    expect(next).toMatchObject({ op: 'ack', seq: 2 });
    // The same key on another topic is another publish.
    expect(await pub.request({ op: 'pub', topic: 'orders/2', data: { n: 1 }, key: 'order-1-created' })).toMatchObject({ op: 'ack', seq: 1 });
    expect(await sub.quiet(() => false)).toBe(true);
    expect(sub.all.filter((f) => f.op === 'msg').map((f) => `${f.seq}:${f.data.n}`)).toEqual(['1:1', '2:2']);
  });

  it('a bad key is a bad_frame error and publishes nothing', async () => {
    const pub = await connect();
    for (const key of ['', 7, 'k'.repeat(129), null]) {
      expect(await pub.request({ op: 'pub', topic: 'bad/key', data: 1, key })).toMatchObject({ op: 'error', code: 'bad_frame' });
    }
    expect(broker.hub.topics(10).topics.some((t) => t.topic === 'bad/key')).toBe(false);
  });

  it('TCP JSON lines and the HTTP API share the keys of WebSocket clients', async () => {
    const sub = await connect();
    await sub.request({ op: 'sub', topic: 'shared/k' });
    const line = await LineClient.connect(broker.tcpPort);
    clients.push({ close: () => line.socket.destroy() });
    line.send(JSON.stringify({ op: 'pub', id: 'l1', topic: 'shared/k', data: 'once', key: 'k-1' }));
    expect(await line.nextJson((f) => f.id === 'l1')).toMatchObject({ op: 'ack', seq: 1 });
    const ws = await (await connect()).request({ op: 'pub', topic: 'shared/k', data: 'once', key: 'k-1' });
    expect(ws).toMatchObject({ op: 'ack', seq: 1, duplicate: true });
    const http = await fetch(`${broker.httpUrl}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'k-1' }, body: JSON.stringify({ topic: 'shared/k', data: 'once' }) });
    expect(await http.json()).toMatchObject({ seq: 1, duplicate: true });
    line.send(JSON.stringify({ op: 'pub', id: 'l2', topic: 'shared/k', data: 'once', key: 'k-1' }));
    expect(await line.nextJson((f) => f.id === 'l2')).toMatchObject({ op: 'ack', seq: 1, duplicate: true });
    expect(await sub.quiet(() => false)).toBe(true);
    expect(sub.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['once']);
  });
});

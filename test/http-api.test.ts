// The HTTP API over real sockets: publish reaches exactly the matching subscribers on both transports,
// every error status, the API key, and what /api/clients and /api/topics show.
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { LineClient } from './helpers/line-client.js';
import { TestClient } from './helpers/client.js';
import { until } from './helpers/waits.js';

/** The parts of the API's JSON bodies these tests read. */
interface ErrorBody {
  error: string;
  message: string;
}
type ClientRow = Record<string, unknown> & { name: string; framesIn: number; framesOut: number; bytesIn: number; bytesOut: number; connectedAt: string };
interface ClientsBody {
  total: number;
  clients: ClientRow[];
}
interface TopicsBody {
  total: number;
  topics: (Record<string, unknown> & { topic: string })[];
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ maxPayload: 1024 });
});
afterAll(() => broker.close());

function publish(b: TestBroker, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${b.httpUrl}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('POST /api/publish', () => {
  it('reaches exactly the matching subscribers over WebSocket and TCP', async () => {
    const dashboard = await TestClient.connect(`${broker.url}/rowdata/pump/42`);
    const otherDashboard = await TestClient.connect(`${broker.url}/rowdata/pump/43`);
    const alarmConsole = await TestClient.connect(`${broker.url}?topics=alarm/%23`);
    const tcpConsole = await LineClient.connect(broker.tcpPort);
    tcpConsole.send('{"op":"sub","topic":"alarm/#","id":"s"}');
    await tcpConsole.nextJson((f) => f.id === 's');
    const bystander = await LineClient.connect(broker.tcpPort);

    const alarm = await publish(broker, { topic: 'alarm/boiler/7', data: { level: 'high', temp: 97 } });
    expect(alarm.status).toBe(200);
    expect(alarm.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await alarm.json()).toEqual({ seq: 1, epoch: expect.any(String), delivered: 2 });
    expect(await alarmConsole.next((f) => f.op === 'msg')).toMatchObject({ topic: 'alarm/boiler/7', seq: 1, data: { level: 'high', temp: 97 } });
    const line = await tcpConsole.nextJson((f) => f.op === 'msg');
    expect(line).toMatchObject({ topic: 'alarm/boiler/7', data: { level: 'high', temp: 97 } });
    expect(line.from).toBeUndefined();

    const row = await publish(broker, { topic: 'rowdata/pump/42', data: [1, 2, 3] });
    expect(await row.json()).toEqual({ seq: 1, epoch: expect.any(String), delivered: 1 });
    expect(await dashboard.next((f) => f.op === 'msg')).toMatchObject({ topic: 'rowdata/pump/42', data: [1, 2, 3] });
    expect(await (await publish(broker, { topic: 'rowdata/pump/42', data: null })).json()).toEqual({ seq: 2, epoch: expect.any(String), delivered: 1 });

    // Nobody else heard anything.
    expect(await otherDashboard.quiet((f) => f.op === 'msg')).toBe(true);
    expect(await alarmConsole.quiet((f) => f.op === 'msg')).toBe(true);
    expect(await bystander.quiet((l) => l.includes('boiler') || l.includes('pump'))).toBe(true);

    for (const c of [dashboard, otherDashboard, alarmConsole]) c.close();
    tcpConsole.close();
    bystander.close();
  });

  it('answers 400 with the protocol error code for bad JSON, bad shapes, bad topics and missing data', async () => {
    const cases: [unknown, string][] = [
      ['{"topic": "a", "data": ', 'bad_frame'],
      ['[1,2]', 'bad_frame'],
      ['"just a string"', 'bad_frame'],
      [{ topic: 'alarm/#', data: 1 }, 'bad_topic'],
      [{ topic: 'a/b+', data: 1 }, 'bad_topic'],
      [{ topic: 42, data: 1 }, 'bad_topic'],
      [{ data: 1 }, 'bad_topic'],
      [{ topic: 'a/b' }, 'bad_frame'],
    ];
    for (const [body, code] of cases) {
      const res = await publish(broker, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const json = (await res.json()) as ErrorBody;
      expect(json.error, JSON.stringify(body)).toBe(code);
      expect(typeof json.message).toBe('string');
    }
  });

  it('answers 413 over --max-payload, declared or streamed', async () => {
    const big = await publish(broker, { topic: 'a', data: 'x'.repeat(2000) });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: 'too_large' });

    // Chunked, no Content-Length: the limit is enforced while reading.
    const status = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${broker.httpUrl}/api/publish`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.write('{"topic":"a","data":"');
      req.write('y'.repeat(1500));
      req.end('"}');
    });
    expect(status.status).toBe(413);
    expect(JSON.parse(status.body)).toMatchObject({ error: 'too_large' });
  });

  it('answers 405 for the wrong method and 404 for unknown API paths', async () => {
    const wrong = await fetch(`${broker.httpUrl}/api/publish`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toContain('POST');
    expect((await fetch(`${broker.httpUrl}/api/nothing`)).status).toBe(404);
  });

  it('answers 503 when the broker starts shutting down mid-request', async () => {
    const b = await startTestBroker({ closeTimeoutMs: 2000 });
    // A WebSocket peer that never answers the close handshake keeps the broker draining for closeTimeoutMs.
    const stubborn = connect(b.port, '127.0.0.1');
    stubborn.on('error', () => {});
    stubborn.write(
      `GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    await new Promise((r) => stubborn.once('data', r));

    let parsed = false;
    b.http.on('request', () => (parsed = true));
    const req = httpRequest(`${b.httpUrl}/api/publish`, { method: 'POST', headers: { 'content-length': '22' } });
    const answer = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
    });
    req.write('{"topic":"a",');
    // The request reaches the broker (its handler waits for the body); the rest of the body arrives after shutdown began.
    await until(() => parsed, 'the request at the broker');
    const closing = b.close();
    await until(() => b.supervisor.getSnapshot().value !== 'running', 'the broker draining');
    req.end('"data":1}');
    expect(await answer).toBe(503);
    stubborn.destroy();
    await closing;
  });
});

describe('API key', () => {
  it('answers 401 without the right bearer key on every /api route; health and the page stay open', async () => {
    const b = await startTestBroker({ apiKey: 's3cret-key' });
    try {
      for (const [method, path] of [
        ['POST', '/api/publish'],
        ['GET', '/api/clients'],
        ['GET', '/api/topics'],
      ] as const) {
        const init = method === 'POST' ? { method, body: JSON.stringify({ topic: 'a', data: 1 }) } : { method };
        const none = await fetch(`${b.httpUrl}${path}`, init);
        expect(none.status, path).toBe(401);
        expect(none.headers.get('www-authenticate')).toBe('Bearer');
        expect(await none.json()).toMatchObject({ error: 'unauthorized' });
        const wrong = await fetch(`${b.httpUrl}${path}`, { ...init, headers: { authorization: 'Bearer s3cret-kez' } });
        expect(wrong.status, path).toBe(401);
        const right = await fetch(`${b.httpUrl}${path}`, { ...init, headers: { authorization: 'Bearer s3cret-key' } });
        expect(right.status, path).toBe(200);
      }
      expect((await fetch(`${b.httpUrl}/healthz`)).status).toBe(200);
      expect((await fetch(`${b.httpUrl}/`)).status).toBe(200);
    } finally {
      await b.close();
    }
  });
});

describe('GET /api/clients and /api/topics', () => {
  it('show every connection with its state, subscriptions, queue and counters, and topics with subscribers and last seq', async () => {
    const b = await startTestBroker();
    try {
      const dash = await TestClient.connect(`${b.url}/rowdata/pump/42?name=dash`);
      const tcp = await LineClient.connect(b.tcpPort);
      tcp.send('hello room');
      await tcp.next((l) => l.endsWith(': hello room'));
      await dash.request({ op: 'sub', topic: 'alarm/#' });
      await publish(b, { topic: 'rowdata/pump/42', data: 1 });
      await dash.next((f) => f.op === 'msg');

      const clients = (await (await fetch(`${b.httpUrl}/api/clients`)).json()) as ClientsBody;
      expect(clients.total).toBe(2);
      const byName: Record<string, ClientRow> = Object.fromEntries(clients.clients.map((c) => [c.name, c]));
      expect(byName.dash).toMatchObject({
        id: dash.hello.client.id,
        addr: dash.hello.client.addr,
        transport: 'ws',
        state: 'online',
        subscriptions: ['rowdata/pump/42', 'alarm/#'],
        mailbox: { depth: 0, dropped: 0 },
      });
      const row = (name: string): ClientRow => byName[name] ?? expect.fail(`no client named ${name}`);
      expect(row('dash').framesIn).toBeGreaterThanOrEqual(1);
      expect(row('dash').framesOut).toBeGreaterThanOrEqual(3);
      expect(row('dash').bytesOut).toBeGreaterThan(row('dash').framesOut);
      expect(Date.parse(row('dash').connectedAt)).toBeLessThanOrEqual(Date.now());
      expect(byName[tcp.addr]).toMatchObject({ transport: 'tcp', state: 'online', subscriptions: ['chat'], presence: ['chat'] });
      expect(row(tcp.addr).bytesIn).toBe('hello room\n'.length);

      const topics = (await (await fetch(`${b.httpUrl}/api/topics`)).json()) as TopicsBody;
      const byTopic = Object.fromEntries(topics.topics.map((t) => [t.topic, t]));
      expect(byTopic['rowdata/pump/42']).toEqual({ topic: 'rowdata/pump/42', wildcard: false, subscribers: 1, lastSeq: 1, epoch: expect.any(String) });
      expect(byTopic.chat).toEqual({ topic: 'chat', wildcard: false, subscribers: 1, lastSeq: 1, epoch: expect.any(String) });
      expect(byTopic['alarm/#']).toEqual({ topic: 'alarm/#', wildcard: true, subscribers: 1, lastSeq: null, epoch: null });

      const limited = (await (await fetch(`${b.httpUrl}/api/topics?limit=1`)).json()) as TopicsBody;
      expect(limited.topics).toHaveLength(1);
      expect(limited.total).toBe(3);
      expect((await fetch(`${b.httpUrl}/api/clients?limit=0`)).status).toBe(400);
      // A topics cursor past 100,000 is a page like any (the broker's own `next` there was refused: 400).
      expect(await (await fetch(`${b.httpUrl}/api/topics?cursor=150000`)).json()).toMatchObject({ total: 3, topics: [] });
      dash.close();
      tcp.close();
    } finally {
      await b.close();
    }
  });

  it('/api/clients pages by client id: a client that leaves between two pages does not hide one that stays', async () => {
    const b = await startTestBroker();
    try {
      const clients: TestClient[] = [];
      for (let i = 0; i < 4; i++) clients.push(await TestClient.connect(b.url));
      const ids = clients.map((c) => c.hello.client.id as string);
      const page1 = (await (await fetch(`${b.httpUrl}/api/clients?limit=2`)).json()) as ClientsBody & { next?: string };
      expect(page1.clients.map((c) => c.id)).toEqual(ids.slice(0, 2));
      clients[0]!.close(); // listed already; the others stay
      await until(() => b.hub.sessionCount === 3, 'the close handled');
      const seen = page1.clients.map((c) => c.id);
      for (let next = page1.next; next !== undefined; ) {
        const page = (await (await fetch(`${b.httpUrl}/api/clients?limit=2&cursor=${next}`)).json()) as ClientsBody & { next?: string };
        seen.push(...page.clients.map((c) => c.id));
        next = page.next;
      }
      expect(seen).toEqual(ids); // the third was on no page: the offset shifted by the one that left
      for (const c of clients.slice(1)) c.close();
    } finally {
      await b.close();
    }
  });
});

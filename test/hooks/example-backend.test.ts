// examples/backend/server.js, the application of docs/integration.md, run as its own process with a broker that
// calls it: cookie login, per-user row subscriptions with the row in the ack, an rpc that publishes, stamped chat,
// and the webhook events it logs. What the walkthrough says happens here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';
import { freePort } from '../helpers/ports.js';

const EXAMPLE = 'examples/backend/server.js';
let backend: BackendProcess;
let broker: TestBroker;

beforeAll(async () => {
  const port = await freePort();
  backend = await startBackend(EXAMPLE, { PORT: '0', HOOK_SECRET: 'example-secret', SWITCHBOARD_URL: `http://127.0.0.1:${port}` });
  broker = await startTestBroker({ port, hookUrl: `${backend.url}/hooks`, hookSecret: 'example-secret' });
});
afterAll(async () => {
  await broker?.close();
  await backend?.stop();
});

async function login(user: string, password: string): Promise<string> {
  const res = await fetch(`${backend.url}/login`, { method: 'POST', body: JSON.stringify({ user, password }) });
  expect(res.status).toBe(200);
  return res.headers.get('set-cookie')!.split(';')[0]!;
}

describe('the example backend', () => {
  it('refuses a connection without a login (401 with the reason)', async () => {
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(broker.url);
      ws.on('error', () => {});
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
    });
    expect(status).toBe(401);
  });

  it('logs in by cookie, subscribes to its own rows only, sets a level by rpc, chats, and the events are logged', async () => {
    const alice = await TestClient.connect(broker.url, { headers: { cookie: await login('alice', 'alice-pw') } });
    const bob = await TestClient.connect(`${broker.url}/rowdata/pump/2`, { headers: { cookie: await login('bob', 'bob-pw') } });
    expect([alice.hello.client.name, bob.hello.client.name]).toEqual(['alice', 'bob']);
    // The row as it is now comes in the ack; a pump that is not yours is refused with the backend's reason.
    expect(await alice.request({ op: 'sub', topic: 'rowdata/pump/1' })).toMatchObject({ op: 'ack', data: { id: '1', level: 40 } });
    expect(await bob.request({ op: 'sub', topic: 'rowdata/pump/1' })).toMatchObject({ op: 'error', code: 'forbidden', message: 'rowdata/pump/1 is not yours' });
    // Asking for it at connect is refused too: the connect hook sees the topics asked.
    const refused = await new Promise<number>((resolve) => {
      login('bob', 'bob-pw').then((cookie) => {
        const ws = new WebSocket(`${broker.url}/rowdata/pump/1`, { headers: { cookie } });
        ws.on('error', () => {});
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
      });
    });
    expect(refused).toBe(403);
    // An operator's rpc changes the row: the backend publishes it, and every subscriber of the row gets it.
    await alice.request({ op: 'sub', topic: 'rowdata/pump/2' });
    const set = await alice.request({ op: 'rpc', method: 'setLevel', data: { pump: 2, level: 80 } });
    expect(set).toMatchObject({ op: 'ack', data: { pump: '2', level: 80, seq: 1 } });
    expect((await bob.next((f) => f.op === 'msg')).data).toEqual({ id: '2', level: 80 });
    expect(await bob.request({ op: 'rpc', method: 'setLevel', data: { pump: 2, level: 1 } })).toMatchObject({ code: 'forbidden', message: 'operators only' });
    // Chat lines are stamped by the backend.
    await bob.request({ op: 'sub', topic: 'chat' });
    await alice.request({ op: 'pub', topic: 'chat', data: 'pump 2 is at 80' });
    expect((await bob.next((f) => f.op === 'msg' && f.topic === 'chat')).data).toEqual({ text: 'pump 2 is at 80', by: 'alice' });
    expect((await alice.request({ op: 'pub', topic: 'rowdata/pump/1', data: {} })).code).toBe('forbidden');
    alice.send({ op: 'quit' });
    await alice.closed;
    // Each webhook event logged once.
    const logged = () => backend.output.map((l) => JSON.parse(l) as { type: string; client?: string; topic?: string; cause?: string });
    const end = Date.now() + 5000;
    while (!logged().some((e) => e.type === 'client.disconnected' && e.client === 'alice') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(logged()).toEqual(
      expect.arrayContaining([
        { msg: 'event', type: 'client.connected', client: 'alice' },
        { msg: 'event', type: 'topic.occupied', topic: 'rowdata/pump/2' },
        { msg: 'event', type: 'client.disconnected', client: 'alice', cause: 'leave' },
      ]),
    );
    bob.ws.close();
  });
});

// The application backend's hooks over real HTTP, with the backend in its own process (test/helpers/hook-backend.mjs):
// every hook's allow, deny and error paths, a slow backend (timeouts, no neighbour harmed), a backend that is down
// (circuit breaker) and one that flaps, and the order of a client's publishes whatever the hook latency.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import WebSocket from 'ws';
import { connect } from 'node:net';
import mqtt from 'mqtt';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';

let backend: BackendProcess;
let broker: TestBroker;

beforeAll(async () => {
  backend = await startBackend('test/helpers/hook-backend.mjs', { HOOK_SECRET: 's3cret' });
  broker = await startTestBroker({ mqttPort: 0, hookUrl: backend.url, hookSecret: 's3cret', hookTimeoutMs: 400, hookBreakerFailures: 3, hookBreakerMs: 300, logLevel: 'silent' });
});
afterAll(async () => {
  await broker?.close();
  await backend?.stop();
});

/** The HTTP status and JSON body a refused upgrade answers. */
function refusal(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => reject(new Error('upgrade accepted')));
    ws.once('error', () => {});
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
  });
}

describe('connect hook', () => {
  it('allows, and sets the name, grant, initial subscriptions and meta shown in presence; signed calls', async () => {
    await backend.script({
      connect: { by: { alice: { name: 'alice', acl: { sub: ['room/#', 'rowdata/#'], pub: ['room/#'] }, topics: ['rowdata/pump/1'], meta: { role: 'operator' } } } },
    });
    const watcher = await TestClient.connect(broker.url);
    await watcher.request({ op: 'sub', topic: 'rowdata/pump/1', presence: true });
    const alice = await TestClient.connect(`${broker.url}?name=alice`, { headers: { cookie: 'session=abc' } });
    expect(alice.hello.client.name).toBe('alice');
    const join = await watcher.next((f) => f.op === 'event' && f.event === 'join' && f.client.name === 'alice');
    expect(join.client.meta).toEqual({ role: 'operator' });
    // The grant from the backend applies: publishing outside acl.pub is forbidden, the name is fixed.
    expect((await alice.request({ op: 'pub', topic: 'other', data: 1 })).code).toBe('forbidden');
    expect((await alice.request({ op: 'rename', name: 'mallory' })).code).toBe('forbidden');
    const calls = await backend.calls();
    const call = calls.find((c) => c.kind === 'connect' && c.body.name === 'alice')!;
    expect(call.signed).toBe(true);
    expect(call.body.headers.cookie).toBe('session=abc');
    expect(call.body.client.transport).toBe('ws');
    alice.ws.close();
    watcher.ws.close();
  });

  it('denies with 401 or 403 and the reason at the upgrade, and a clear line on TCP', async () => {
    await backend.script({ connect: { by: { eve: { allow: false, reason: 'no session' }, bob: { allow: false, status: 401, reason: 'log in first' } } } });
    expect(await refusal(`${broker.url}?name=eve`)).toEqual({ status: 403, body: { error: 'no session' } });
    expect(await refusal(`${broker.url}?name=bob`)).toEqual({ status: 401, body: { error: 'log in first' } });
    // GET /ws tells the same to a browser that cannot read a refused upgrade.
    const diag = await fetch(`${broker.httpUrl}/ws?name=eve`);
    expect(diag.status).toBe(403);
    await backend.script({ connect: { answer: { allow: false, reason: 'tcp is closed today' } } });
    const text = await tcpText(broker.tcpPort);
    expect(text).toBe('error forbidden: tcp is closed today\nbye: tcp is closed today (1008)\n');
  });

  it('MQTT: a refusal is a refused CONNACK (not authorized), an allowed device gets its meta shown in presence', async () => {
    await backend.script({ connect: { by: { 'sensor-1': { meta: { site: 'north' } }, rogue: { allow: false, reason: 'unknown device' } } } });
    const refused = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'rogue', reconnectPeriod: 0 }).then(
      (c) => (c.end(true), 'connected'),
      (err: { code?: number }) => err.code,
    );
    expect(refused).toBe(5); // 3.1.1 "not authorized"
    const watcher = await TestClient.connect(broker.url);
    await watcher.request({ op: 'sub', topic: 'plant/#', presence: true });
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'sensor-1', reconnectPeriod: 0 });
    await device.subscribeAsync('plant/#');
    const join = await watcher.next((f) => f.op === 'event' && f.event === 'join' && f.client.name === 'sensor-1');
    expect(join.client.meta).toEqual({ site: 'north' });
    await device.endAsync(true);
    watcher.ws.close();
    await backend.script({});
  });

  it('a backend error, a slow backend and a bad answer refuse with 503 and the cause, never a hang', async () => {
    await backend.script({ connect: { status: 500 } });
    const failed = await refusal(broker.url);
    expect(failed.status).toBe(503);
    expect(failed.body.error).toMatch(/HTTP 500/);
    await backend.script({ connect: { delayMs: 2000 } });
    const slow = await refusal(broker.url);
    expect(slow.status).toBe(503);
    expect(slow.body.error).toMatch(/did not answer within 400 ms/);
    await backend.script({ connect: { answer: { acl: { sub: 'not a list' } } } });
    expect((await refusal(broker.url)).body.error).toMatch(/invalid/);
    // meta with a lone surrogate (the JSON escape \ud800 alone): a cluster's Redis could not decode the client's record.
    await backend.script({ connect: { answer: { meta: { site: { tag: 'n\ud800' } } } } });
    expect((await refusal(broker.url)).body.error).toMatch(/not well-formed Unicode/);
    await backend.script({});
  });
});

describe('subscribe hook', () => {
  it('allows with data in the ack, denies with the reason, and a failure is unavailable', async () => {
    await backend.script({
      subscribe: { by: { 'rowdata/pump/7': { data: { rows: [{ id: 7, level: 3 }] } }, 'secret/x': { allow: false, reason: 'not yours' } } },
    });
    const c = await TestClient.connect(broker.url);
    const ack = await c.request({ op: 'sub', topic: 'rowdata/pump/7' });
    expect(ack).toMatchObject({ op: 'ack', data: { rows: [{ id: 7, level: 3 }] } });
    expect(ack.life).toEqual(expect.any(String));
    const denied = await c.request({ op: 'sub', topic: 'secret/x' });
    expect(denied).toMatchObject({ op: 'error', code: 'forbidden', message: 'not yours' });
    await backend.script({ subscribe: { status: 503 } });
    const failed = await c.request({ op: 'sub', topic: 'a/b' });
    expect(failed.code).toBe('unavailable');
    // Nothing was subscribed: a publish there reaches nobody.
    const pub = (await (await fetch(`${broker.httpUrl}/api/publish`, { method: 'POST', body: JSON.stringify({ topic: 'a/b', data: 1 }) })).json()) as { delivered: number };
    expect(pub.delivered).toBe(0);
    await backend.script({});
    c.ws.close();
  });
});

describe('publish hook', () => {
  it('allows, replaces the data, denies', async () => {
    await backend.script({ publish: { by: { 'p/replace': { data: { enriched: true } }, 'p/deny': { allow: false, reason: 'read only' } } } });
    const c = await TestClient.connect(broker.url);
    await c.request({ op: 'sub', topic: 'p/#' });
    await c.request({ op: 'pub', topic: 'p/plain', data: 'as sent' });
    expect((await c.next((f) => f.op === 'msg')).data).toBe('as sent');
    await c.request({ op: 'pub', topic: 'p/replace', data: 'raw' });
    expect((await c.next((f) => f.op === 'msg')).data).toEqual({ enriched: true });
    expect(await c.request({ op: 'pub', topic: 'p/deny', data: 1 })).toMatchObject({ code: 'forbidden', message: 'read only' });
    c.ws.close();
  });

  it("keeps one client's publishes in order whatever each call's latency (fast-check)", async () => {
    await backend.script({ publish: { randomDelayMs: 40 } });
    const c = await TestClient.connect(broker.url);
    await c.request({ op: 'sub', topic: 'order/#' });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom('order/a', 'order/b'), { minLength: 1, maxLength: 12 }), async (topics) => {
        const run = Math.random().toString(36).slice(2);
        topics.forEach((topic, i) => c.send({ op: 'pub', topic, data: { run, i } }));
        const seen: number[] = [];
        while (seen.length < topics.length) {
          const m = await c.next((f) => f.op === 'msg' && f.data.run === run);
          seen.push(m.data.i);
        }
        expect(seen).toEqual(topics.map((_, i) => i));
      }),
      { numRuns: 15 },
    );
    await backend.script({});
    c.ws.close();
  });

  it('a slow backend is unavailable for the client that waits on it, and its neighbour is served meanwhile', async () => {
    await backend.script({ publish: { by: { 'slow/x': {} }, delayMs: 0 } });
    await backend.script({ publish: { delayMs: 2000 } });
    const slow = await TestClient.connect(broker.url);
    const neighbour = await TestClient.connect(broker.url);
    let answered = false;
    const pending = slow.request({ op: 'pub', topic: 'slow/x', data: 1 }).finally(() => (answered = true));
    // The neighbour is served while the slow client still waits for its backend (its answer comes at the timeout).
    expect((await neighbour.request({ op: 'ping' })).op).toBe('pong');
    expect(answered).toBe(false);
    const answer = await pending;
    expect(answer).toMatchObject({ code: 'unavailable' });
    expect(answer.message).toMatch(/nothing was done/);
    await backend.script({});
    slow.ws.close();
    neighbour.ws.close();
  });
});

describe('rpc', () => {
  it('answers with the backend data, maps its errors, and is refused without the hook', async () => {
    await backend.script({ rpc: { echo: true, by: { fail: { error: { message: 'no such pump' } }, deny: { allow: false, reason: 'operators only' } } } });
    const c = await TestClient.connect(broker.url);
    expect(await c.request({ op: 'rpc', method: 'echo', data: { x: 1 } })).toMatchObject({ op: 'ack', data: { x: 1 } });
    expect(await c.request({ op: 'rpc', method: 'fail', data: null })).toMatchObject({ op: 'error', code: 'backend_error', message: 'no such pump' });
    expect(await c.request({ op: 'rpc', method: 'deny' })).toMatchObject({ code: 'forbidden', message: 'operators only' });
    expect((await c.request({ op: 'rpc', method: '' })).code).toBe('bad_frame');
    // A call that got no answer in time may have acted: outcome_unknown, not unavailable.
    await backend.script({ rpc: { delayMs: 1500 } });
    expect((await c.request({ op: 'rpc', method: 'slow' })).code).toBe('outcome_unknown');
    await backend.script({});
    c.ws.close();
    const plain = await startTestBroker({ logLevel: 'silent' });
    const p = await TestClient.connect(plain.url);
    expect(await p.request({ op: 'rpc', method: 'x' })).toMatchObject({ code: 'bad_frame', message: expect.stringMatching(/not enabled/) });
    p.ws.close();
    await plain.close();
  });
});

describe('a backend that is down or flapping', () => {
  it('opens the breaker after repeated failures (unavailable at once), and closes it once the backend is back', async () => {
    const down = await startBackend();
    const port = down.port;
    const b = await startTestBroker({ hookUrl: down.url, hooks: 'publish', hookTimeoutMs: 1000, hookBreakerFailures: 3, hookBreakerMs: 200, logLevel: 'silent' });
    await down.stop();
    const c = await TestClient.connect(b.url);
    for (let i = 0; i < 3; i++) {
      const r = await c.request({ op: 'pub', topic: 't', data: i });
      expect(r).toMatchObject({ code: 'unavailable', message: expect.stringMatching(/unreachable/) });
    }
    // Open: refused without a call.
    expect((await c.request({ op: 'pub', topic: 't', data: 'x' })).message).toMatch(/paused/);
    // The backend comes back on the same port; after the open interval one trial call closes the breaker.
    const back = await startBackend('test/helpers/hook-backend.mjs', { PORT: String(port) });
    // Polled until the open interval (200 ms) is over and the trial call closes the breaker.
    let ok = false;
    for (let i = 0; i < 20 && !ok; i++) {
      ok = (await c.request({ op: 'pub', topic: 't', data: 'back' })).op === 'ack';
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ok).toBe(true);
    c.ws.close();
    await b.close();
    await back.stop();
  });

  it("one client's calls the backend refuses with a 4xx do not pause the hook for the others (the backend answered)", async () => {
    await backend.script({ rpc: { echo: true, statusBy: { nope: 404 }, by: { nope: { error: { message: 'no such method' } } } } });
    const mallory = await TestClient.connect(broker.url);
    const alice = await TestClient.connect(broker.url);
    // Twice the breaker's failure count (3 here) of refused calls in a row.
    for (let i = 0; i < 6; i++) expect((await mallory.request({ op: 'rpc', method: 'nope' })).code).toBe('backend_error');
    expect(await alice.request({ op: 'rpc', method: 'echo', data: 1 })).toMatchObject({ op: 'ack', data: 1 });
    await backend.script({});
    mallory.ws.close();
    alice.ws.close();
  });

  it('flapping: every failed call is unavailable to its client, every other goes through, nothing hangs', async () => {
    await backend.script({ publish: { failEvery: 2 } });
    const c = await TestClient.connect(broker.url);
    const answers = [];
    for (let i = 0; i < 10; i++) answers.push((await c.request({ op: 'pub', topic: 'f', data: i })).op === 'ack' ? 'ok' : 'unavailable');
    expect(answers).toEqual(['ok', 'unavailable', 'ok', 'unavailable', 'ok', 'unavailable', 'ok', 'unavailable', 'ok', 'unavailable']);
    await backend.script({});
    c.ws.close();
  });
});

/** Everything a TCP connection reads until the broker closes it. */
function tcpText(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d) => (text += d));
    s.on('close', () => resolve(text));
    s.on('error', () => {});
  });
}

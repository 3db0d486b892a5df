// A hook answer whose `allow` is not true or false (`"false"`, 0, null) is no verdict: a malformed answer, so the
// broker does not act and says `unavailable` (docs/integration.md, Order, time and failure). It was read as an allow:
// `{"allow":"false"}` published and subscribed (found by a review helper).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';

let backend: BackendProcess;
let broker: TestBroker;
beforeAll(async () => {
  backend = await startBackend('test/helpers/hook-backend.mjs');
  broker = await startTestBroker({ hookUrl: backend.url, hookTimeoutMs: 2000, hooks: 'connect,subscribe,publish,rpc' });
});
afterAll(async () => {
  await broker?.close();
  await backend?.stop();
});

describe('hook answers that are not a verdict', () => {
  it('publish, subscribe, connect and rpc answered with a non-boolean allow: nothing is done, the client is told', async () => {
    await backend.script({
      publish: { by: { 'j/str': { allow: 'false', reason: 'read only' }, 'j/zero': { allow: 0 }, 'j/no': { allow: false } } },
      subscribe: { by: { 's/null': { allow: null } } },
      connect: { by: { junk: { allow: 'no' } } },
      rpc: { by: { junk: { allow: 'false', data: 'secret' } } },
    });
    const watcher = await TestClient.connect(broker.url);
    await watcher.request({ op: 'sub', topic: 'j/#' });
    const c = await TestClient.connect(broker.url);
    expect(await c.request({ op: 'pub', topic: 'j/str', data: 1 })).toMatchObject({ op: 'error', code: 'unavailable' });
    expect(await c.request({ op: 'pub', topic: 'j/zero', data: 2 })).toMatchObject({ op: 'error', code: 'unavailable' });
    expect(await c.request({ op: 'pub', topic: 'j/no', data: 3 })).toMatchObject({ op: 'error', code: 'forbidden', message: 'the application does not allow publishing to \'j/no\'' });
    expect(await c.request({ op: 'pub', topic: 'j/ok', data: 'marker' })).toMatchObject({ op: 'ack' });
    await watcher.next((f) => f.op === 'msg' && f.data === 'marker');
    expect(watcher.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['marker']);

    expect(await c.request({ op: 'sub', topic: 's/null' })).toMatchObject({ op: 'error', code: 'unavailable' });
    expect(await c.request({ op: 'rpc', method: 'junk', data: null })).toMatchObject({ op: 'error', code: 'backend_error' });

    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${broker.url}?name=junk`);
      ws.once('open', () => reject(new Error('upgrade accepted')));
      ws.once('error', () => undefined);
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    });
    expect(status).toBe(503);
    c.close();
    watcher.close();
  });
});

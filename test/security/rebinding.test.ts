// DNS rebinding against the HTTP API: a page served under a name the attacker controls, rebound to the broker's
// address, sends its requests with `Host: attacker.example`. The API, the actors page and the metrics answer only
// requests addressed to the broker itself (its addresses, loopback, --public-host): the rest get 421, while the API
// is open (no --api-key, no auth).
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

function get(port: number, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('cross-site requests to the API', () => {
  it("a page on another origin cannot publish or disconnect through the open API (a no-cors POST needs no preflight); the broker's own pages and servers can", async () => {
    broker = await startTestBroker();
    const victim = await TestClient.connect(`${broker.url}/rowdata/pump/1`);
    // What fetch(…, { method: 'POST', mode: 'no-cors', body }) on evil.example sends: Host is the broker's own address.
    const post = (path: string, body: unknown, origin?: string) =>
      fetch(`${broker!.httpUrl}${path}`, { method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8', ...(origin && { origin }) }, body: JSON.stringify(body) });
    const refused = await post('/api/publish', { topic: 'rowdata/pump/1', data: { level: 0 } }, 'https://evil.example');
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: 'forbidden' });
    expect((await post('/api/clients/disconnect', { id: victim.hello.client.id }, 'https://evil.example')).status).toBe(403);
    // The broker's own page (its origin) and a server (no Origin) publish; the victim gets exactly those two.
    expect((await post('/api/publish', { topic: 'rowdata/pump/1', data: 'own page' }, broker.httpUrl)).status).toBe(200);
    expect((await post('/api/publish', { topic: 'rowdata/pump/1', data: 'server' })).status).toBe(200);
    expect((await victim.next((f) => f.op === 'msg')).data).toBe('own page');
    expect((await victim.next((f) => f.op === 'msg' && f.data === 'server')).data).toBe('server');
    expect(victim.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['own page', 'server']);
    victim.close();
  });
});

describe('requests addressed to another name', () => {
  it('the API, /inspect and /metrics refuse a rebound Host with 421; the broker’s own names are served', async () => {
    broker = await startTestBroker();
    const { port } = broker;
    for (const path of ['/api/clients', '/api/topics', '/inspect', '/metrics']) {
      const refused = await get(port, path, `attacker.example:${port}`);
      expect(refused.status, path).toBe(421);
      expect(JSON.parse(refused.body)).toMatchObject({ error: 'misdirected' });
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) expect((await get(port, '/api/clients', host)).status).toBe(200);
    // The chat page and health check are not secrets: served whatever the name.
    expect((await get(port, '/healthz', `attacker.example:${port}`)).status).toBe(200);
  });

  it('with an API key (credentials a rebound page does not have) any name is served', async () => {
    broker = await startTestBroker({ apiKey: 'k' });
    expect((await get(broker.port, '/api/clients', `pushers.internal:${broker.port}`)).status).toBe(401); // asked for the key, not refused
  });

  it('--public-host names the broker is reached by (behind a proxy) are served', async () => {
    broker = await startTestBroker({ publicHost: 'broker.example' });
    expect((await get(broker.port, '/api/clients', 'broker.example')).status).toBe(200);
    expect((await get(broker.port, '/api/clients', 'other.example')).status).toBe(421);
  });
});

// The line protocol through the HTTP port (`GET /lines?room=…`, Upgrade: switchboard-lines): the client picks its room
// before it joins, so the TCP port's room (--room) hears nothing of it, while plain TCP clients keep their session.
import { request } from 'node:http';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { LineClient } from './helpers/line-client.js';
import { TestClient } from './helpers/client.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.close());

/** Everything `c` received up to the pong of a ping sent now (the pong proves everything queued before it has arrived). */
async function linesUntilPong(c: LineClient, id: string): Promise<string[]> {
  const from = c.all.length;
  c.send(JSON.stringify({ op: 'ping', id }));
  await c.nextJson((f) => f.op === 'pong' && f.id === id);
  return c.all.slice(from).filter((l) => !l.includes(`"id":"${id}"`));
}

async function framesUntilPong(c: TestClient, id: string): Promise<unknown[]> {
  const from = c.all.length;
  await c.request({ op: 'ping', id });
  return c.all.slice(from).filter((f) => f.id !== id);
}

describe('line protocol through the HTTP port', () => {
  it('joins the room it asked for, with the name it asked for; the --room chat hears nothing of it', async () => {
    const nc = await LineClient.connect(broker.tcpPort);
    await nc.next(`[${nc.addr}]${nc.addr}: login`);
    const watcher = await TestClient.connect(`${broker.url}?name=watcher`);
    await watcher.request({ op: 'sub', topic: 'chat', presence: true });
    await linesUntilPong(nc, 'p0');

    const tool = await LineClient.upgrade(broker.port, '?room=tools/x&name=probe1');
    expect(tool.all[0]).toMatch(/^I am here: switchboard .* room 'tools\/x'\. You are probe1 from 127\.0\.0\.1:\d+ /);
    await tool.next(`[${tool.addr}]probe1: login`);
    tool.send('hello tools');
    await tool.next(`[${tool.addr}]probe1: hello tools`);
    tool.send(JSON.stringify({ op: 'rename', id: 'r', name: 'probe2' }));
    await tool.nextJson((f) => f.id === 'r' && f.op === 'ack');
    tool.send('quit');
    await tool.closed;

    // Barriers: everything the broker sent the chat's members before their pongs has arrived; none of it is the tool's.
    expect(await linesUntilPong(nc, 'p1')).toEqual([]);
    expect(await framesUntilPong(watcher, 'p2')).toEqual([]);
    nc.close();
    watcher.close();
  });

  it('without room= it joins --room like the TCP port does', async () => {
    const a = await LineClient.upgrade(broker.port);
    expect(a.all[0]).toMatch(/room 'chat'/);
    await a.next(`[${a.addr}]${a.addr}: login`);
    a.close();
    await a.closed;
  });

  it('refuses a bad room (400) and a missing Upgrade: switchboard-lines (400) before any actor exists', async () => {
    const before = broker.hub.inspect.clientCount();
    await expect(LineClient.upgrade(broker.port, '?room=a/%23')).rejects.toThrow(/400 Bad Request.*room must be a topic/);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(`${broker.httpUrl}/lines`, { headers: { connection: 'Upgrade', upgrade: 'websocket' } });
      req.on('response', (res) => (res.resume(), resolve(res.statusCode)));
      req.on('upgrade', () => resolve(101));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(400);
    expect(broker.hub.inspect.clientCount()).toBe(before);
  });

  it('with tokens required: 401 without one; with one, the token names the client', async () => {
    const secret = 'test-secret-that-is-long-enough-for-hs256';
    const authed = await startTestBroker({ authSecret: secret });
    try {
      await expect(LineClient.upgrade(authed.port, '?room=r')).rejects.toThrow(/401 Unauthorized/);
      const jwt = await new SignJWT({ sub: 'svc' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(secret));
      const c = await LineClient.upgrade(authed.port, `?room=r&token=${jwt}`);
      expect(c.all[0]).toMatch(/room 'r'\. You are svc from /);
      c.close();
      await c.closed;
    } finally {
      await authed.close();
    }
  });
});

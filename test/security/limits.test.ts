// Limits over real sockets: origins (403), connections in total (503) and per IP (429) before the upgrade,
// oversize frames (1009), subscriptions per connection, name and topic rules — each answered with its protocol code.
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { statusOf, tryUpgrade, waitFor } from './upgrade.js';

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

describe('origin check', () => {
  it('default: same host and no Origin are allowed, another origin gets 403', async () => {
    broker = await startTestBroker();
    const host = `127.0.0.1:${broker.port}`;
    expect(await statusOf(broker.url)).toBe(101); // non-browser client: no Origin header
    expect(await statusOf(broker.url, { origin: `http://${host}` })).toBe(101);
    expect(await statusOf(broker.url, { origin: 'http://evil.example' })).toBe(403);
    expect(await statusOf(broker.url, { origin: 'http://127.0.0.1:1' })).toBe(403);
  });

  it('DNS rebinding: a foreign Host with its matching Origin gets 403; the broker\'s own names and --public-host connect', async () => {
    broker = await startTestBroker({ publicHost: 'chat.example.com' });
    const port = broker.port;
    // The attacker's name resolves to 127.0.0.1, so the browser sends Host and Origin both naming attacker.example.
    const rebound = { origin: `http://attacker.example:${port}`, headers: { host: `attacker.example:${port}` } };
    expect(await statusOf(broker.url, rebound)).toBe(403);
    expect(await statusOf(broker.url, { origin: 'http://attacker.example', headers: { host: 'attacker.example' } })).toBe(403);
    for (const origin of [`http://localhost:${port}`, `http://127.0.0.1:${port}`, `http://[::1]:${port}`, 'https://chat.example.com']) {
      expect(await statusOf(broker.url, { origin }), origin).toBe(101);
    }
    // The legitimate pages still pass when the Host header names them too.
    expect(await statusOf(broker.url, { origin: `http://localhost:${port}`, headers: { host: `localhost:${port}` } })).toBe(101);
    expect(await statusOf(broker.url, { origin: 'https://chat.example.com', headers: { host: 'chat.example.com' } })).toBe(101);
  });

  it('--allowed-origins lists exactly who may connect; * allows everyone', async () => {
    broker = await startTestBroker({ allowedOrigins: 'https://app.example.com' });
    expect(await statusOf(broker.url, { origin: 'https://app.example.com' })).toBe(101);
    expect(await statusOf(broker.url, { origin: `http://127.0.0.1:${broker.port}` })).toBe(403);
    await broker.close();
    broker = await startTestBroker({ allowedOrigins: '*' });
    expect(await statusOf(broker.url, { origin: 'http://evil.example' })).toBe(101);
  });
});

describe('connection limits', () => {
  it('over the per-IP bound: 429; over the total: 503; both before any actor exists; slots come back on close', async () => {
    broker = await startTestBroker({ maxConnectionsPerIp: 2, maxConnections: 3 });
    const a = await TestClient.connect(broker.url);
    const b = await TestClient.connect(broker.url);
    expect(await statusOf(broker.url)).toBe(429);
    // another source address on this host: 127.0.0.2 is loopback too on Linux
    const c = await tryUpgrade(broker.url, { localAddress: '127.0.0.2' });
    expect(c.status).toBe(101);
    expect(await statusOf(broker.url, { localAddress: '127.0.0.3' })).toBe(503);
    expect(broker.hub.inspect.clientCount()).toBe(3);
    a.close();
    await a.closed;
    await waitFor(() => broker!.admission!.size === 2);
    const d = await TestClient.connect(broker.url);
    expect(d.hello.op).toBe('hello');
    for (const x of [b, d]) x.close();
    if ('ws' in c) c.ws.close();
    await waitFor(() => broker!.admission!.size === 0);
  });
});

describe('frame and protocol limits', () => {
  it('a frame over --max-payload closes with 1009; others are unaffected', async () => {
    broker = await startTestBroker({ maxPayload: 1024 });
    const big = await TestClient.connect(broker.url);
    const other = await TestClient.connect(broker.url);
    big.send({ op: 'pub', topic: 't', data: 'x'.repeat(2000) });
    expect((await big.closed).code).toBe(1009);
    expect(await other.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    other.close();
  });

  it('subscriptions beyond --max-subscriptions get too_large; existing ones keep working', async () => {
    broker = await startTestBroker({ maxSubscriptions: 3 });
    const c = await TestClient.connect(broker.url);
    for (const t of ['a', 'b', 'c']) expect(await c.request({ op: 'sub', topic: t })).toMatchObject({ op: 'ack' });
    expect(await c.request({ op: 'sub', topic: 'd' })).toMatchObject({ op: 'error', code: 'too_large' });
    expect(await c.request({ op: 'sub', topic: 'a' })).toMatchObject({ op: 'ack' }); // re-subscribing is not a new one
    expect(await c.request({ op: 'unsub', topic: 'a' })).toMatchObject({ op: 'ack' });
    expect(await c.request({ op: 'sub', topic: 'd' })).toMatchObject({ op: 'ack' });
    expect(broker.hub.inspect.filters().length).toBe(3);
    c.close();
  });

  it('name rules: bad_name for empty, too long, control characters, padded, c<digits>; name_taken for a held name', async () => {
    broker = await startTestBroker();
    const c = await TestClient.connect(broker.url);
    const holder = await TestClient.connect(`${broker.url}?name=held`);
    for (const name of ['', 'x'.repeat(65), 'tab\there', ' padded', 'c42', 42]) {
      expect(await c.request({ op: 'rename', name })).toMatchObject({ op: 'error', code: 'bad_name' });
    }
    expect(await c.request({ op: 'rename', name: 'held' })).toMatchObject({ op: 'error', code: 'name_taken' });
    expect(await c.request({ op: 'rename', name: 'x'.repeat(64) })).toMatchObject({ op: 'ack' });
    c.close();
    holder.close();
  });

  it('topic rules: bad_topic for wildcards in pub, # not last, wildcards inside segments, too many or too long segments', async () => {
    broker = await startTestBroker();
    const c = await TestClient.connect(broker.url);
    const bad: [string, string][] = [
      ['pub', 'a/+'],
      ['pub', 'a/#'],
      ['sub', 'a/#/b'],
      ['sub', 'a/b#'],
      ['sub', 'a+/b'],
      ['sub', Array.from({ length: 17 }, () => 'x').join('/')],
      ['sub', 'x'.repeat(65)],
      ['sub', `${'y'.repeat(60)}/`.repeat(5)],
      ['sub', ''],
    ];
    for (const [op, topic] of bad) {
      expect(await c.request({ op, topic, data: 1 }), `${op} ${topic}`).toMatchObject({ op: 'error', code: 'bad_topic' });
    }
    expect(await c.request({ op: 'sub', topic: Array.from({ length: 16 }, () => 'x').join('/') })).toMatchObject({ op: 'ack' });
    expect(broker.hub.inspect.filters().length).toBe(1);
    c.close();
  });
});

describe('origin check on every WebSocket endpoint', () => {
  it('the actors page socket refuses foreign origins too', async () => {
    broker = await startTestBroker();
    const paths = [...broker.upgrades.keys()];
    expect(paths.length).toBeGreaterThan(0);
    for (const path of paths) {
      expect(await statusOf(`ws://127.0.0.1:${broker.port}${path}`, { origin: 'http://evil.example' }), path).toBe(403);
    }
  });
});

// The HTTP port under hostile sockets: odd request targets are refused and never logged with their query; every
// accepted socket holds a connection slot (slow-header sockets fill the limit, then time out and free it); early
// refusals close the socket instead of draining a declared body; the open-file limit is checked at start.
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { defaults, type Config } from '../../src/config.js';
import { startBroker, type Broker } from '../../src/broker.js';
import { openFilesSoftLimit, openFilesWarning } from '../../src/open-files.js';
import { TestClient } from '../helpers/client.js';
import { rawHttp, statusOf, waitFor } from './upgrade.js';

let broker: Broker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

/** A broker whose log lines are kept in `lines` (debug level, JSON). */
async function loggedBroker(overrides: Partial<Config> = {}): Promise<{ broker: Broker; lines: string[] }> {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  const b = await startBroker({ ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, ...overrides }, { log });
  return { broker: b, lines };
}

describe('request targets', () => {
  it('no request target is logged with its query string; // is a 400 on both paths', async () => {
    const logged = await loggedBroker();
    broker = logged.broker;
    broker.router.on('GET', '/boom', () => {
      throw new Error('planted handler failure');
    });
    const port = broker.port;
    expect((await rawHttp(port, 'GET /boom?token=sekrit1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).status).toBe(500);
    expect((await rawHttp(port, 'GET //?token=sekrit2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).status).toBe(400);
    const upgrade = (t: string) => `GET ${t} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`;
    expect((await rawHttp(port, upgrade('//?token=sekrit3'))).status).toBe(400);
    expect((await rawHttp(port, upgrade('/nowhere?token=sekrit4'))).status).toBe(404);
    const text = logged.lines.join('');
    expect(text).toContain('"path":"/boom"');
    expect(text).not.toMatch(/sekrit/);
  });
});

/** A socket that sends the start of a request and then one header byte every `everyMs`, never finishing. */
function slowHeaders(port: number, everyMs = 100): { socket: Socket; closedAt: Promise<number>; received: () => string } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  const timer = setInterval(() => socket.writable && socket.write('x'), everyMs);
  socket.once('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: '));
  const closedAt = new Promise<number>((r) => socket.once('close', () => (clearInterval(timer), r(Date.now()))));
  return { socket, closedAt, received: () => text };
}

describe('every HTTP socket holds a connection slot', () => {
  it('slow-header sockets fill --max-connections: more are refused at once (503, closed) while every slot is held, the victim keeps receiving, and their slots come back when they close', async () => {
    // An HTTP deadline longer than any test (10 minutes): nothing but the refusal itself can answer or close a
    // socket over the limit, and no slot frees by itself, so a refusal that waited for a slot, or one left open for
    // the deadline to cut, would never come back closed (rawHttp's wait below only guards against that hang).
    const logged = await loggedBroker({ maxConnections: 20, httpTimeoutMs: 600_000 });
    broker = logged.broker;
    const url = `ws://127.0.0.1:${broker.port}/ws`;
    const sub = await TestClient.connect(url);
    expect(await sub.request({ op: 'sub', topic: 'victim' })).toMatchObject({ op: 'ack' });
    const pub = await TestClient.connect(url);
    expect(broker.admission!.size).toBe(2); // an upgraded socket keeps the one slot it took on accept

    const slow = Array.from({ length: 18 }, () => slowHeaders(broker!.port));
    await waitFor(() => broker!.admission!.size === 20, 10_000);

    // Over the limit: answered 503 and closed, plain request or upgrade, while the slow sockets hold every slot.
    for (let i = 0; i < 10; i++) {
      const r = await rawHttp(broker.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 10_000);
      expect(r.status).toBe(503);
      expect(r.closed).toBe(true);
    }
    expect(await statusOf(url)).toBe(503);
    expect(broker.admission!.size).toBe(20);

    // The victim, connected before, keeps receiving while the slow sockets hold every other slot.
    for (let i = 0; i < 50; i++) {
      expect(await pub.request({ op: 'pub', topic: 'victim', data: i })).toMatchObject({ op: 'ack' });
      expect(await sub.next((f) => f.op === 'msg')).toMatchObject({ data: i });
    }
    expect(slow.every((s) => s.received() === '')).toBe(true); // still held: nothing answered them

    // Refusals are logged once an interval at most (RefusalLog's own test), naming the flag, with counts: the lines
    // count every refusal, once all are out (the last interval's sum comes when it ends).
    type Line = { msg: string; refused: number };
    const refusals = () => logged.lines.map((l) => JSON.parse(l) as Line).filter((l) => /connections refused/.test(l.msg));
    await waitFor(() => refusals().reduce((n, l) => n + l.refused, 0) === 11, 10_000);
    expect(refusals()[0]!.msg).toMatch(/20 connections in total reached \(raise with --max-connections\)/);

    // A slow socket that goes gives its slot back: /healthz answers on a fresh socket once they have gone.
    for (const s of slow) s.socket.destroy();
    await waitFor(() => broker!.admission!.size === 2, 10_000);
    expect((await rawHttp(broker.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 10_000)).status).toBe(200);
    sub.close();
    pub.close();
  });

  it('slow-header sockets time out (--http-timeout-ms): answered 408 and closed, their slots back; an upgraded socket is not subject to it', async () => {
    broker = (await loggedBroker({ maxConnections: 20, httpTimeoutMs: 1500 })).broker;
    const url = `ws://127.0.0.1:${broker.port}/ws`;
    const sub = await TestClient.connect(url);
    expect(await sub.request({ op: 'sub', topic: 'victim' })).toMatchObject({ op: 'ack' });
    const pub = await TestClient.connect(url);
    const started = Date.now();
    const slow = Array.from({ length: 18 }, () => slowHeaders(broker!.port));
    await waitFor(() => broker!.admission!.size === 20, 10_000);

    const closedAt = await Promise.all(slow.map((s) => s.closedAt));
    for (const s of slow) expect(s.received()).toMatch(/^HTTP\/1\.1 408 /);
    // Held until the deadline, not cut before it (a lower bound: a loaded machine only makes it later).
    expect(Math.min(...closedAt) - started).toBeGreaterThanOrEqual(1500);
    await waitFor(() => broker!.admission!.size === 2, 10_000);
    const health = await rawHttp(broker.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 10_000);
    expect(health.status).toBe(200);
    // The victim is still there after the timeouts: upgraded sockets are not subject to the HTTP deadlines.
    expect(await pub.request({ op: 'pub', topic: 'victim', data: 'after' })).toMatchObject({ op: 'ack' });
    expect(await sub.next((f) => f.op === 'msg')).toMatchObject({ data: 'after' });
    sub.close();
    pub.close();
  });

  it('an early 401 or 413 on /api/publish with a 1 GB Content-Length closes the socket instead of draining it', async () => {
    broker = (await loggedBroker({ apiKey: 'k', maxPayload: 1024 })).broker;
    const body = 'x'.repeat(64 * 1024);
    const post = (auth: string) => `POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1:${broker!.port}\r\n${auth}Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n${body}`;
    const unauthorized = await rawHttp(broker.port, post(''), 3000);
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.text).toMatch(/\r\nConnection: close\r\n/i);
    expect(unauthorized.closed).toBe(true);
    const tooLarge = await rawHttp(broker.port, post('Authorization: Bearer k\r\n'), 3000);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.closed).toBe(true);
    // Declared small, sent large: the 413 comes mid-body, and the socket is closed too.
    const midBody = await rawHttp(broker.port, `POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1:${broker.port}\r\nAuthorization: Bearer k\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n${body}\r\n`, 3000);
    expect(midBody.status).toBe(413);
    expect(midBody.closed).toBe(true);
    await waitFor(() => broker!.admission!.size === 0);
    console.log(`early refusals closed in ${unauthorized.ms} ms (401), ${tooLarge.ms} ms (413), ${midBody.ms} ms (413 mid-body)`);
  });
});

describe('open-file limit', () => {
  it('reads the soft limit and warns below --max-connections plus headroom, naming the flag and ulimit -n', () => {
    const limits = 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n';
    expect(openFilesSoftLimit(limits)).toBe(1024);
    expect(openFilesSoftLimit('Max open files            unlimited            unlimited            files\n')).toBeUndefined();
    expect(openFilesSoftLimit('')).toBeUndefined();
    expect(openFilesWarning(10_000, 1024)).toMatch(/--max-connections is 10000.*ulimit -n to at least 10064/);
    expect(openFilesWarning(900, 1024)).toBeUndefined();
    expect(openFilesWarning(10_000, undefined)).toBeUndefined();
  });

  it('the broker logs it at start', async () => {
    const soft = openFilesSoftLimit(await import('node:fs').then((fs) => fs.readFileSync('/proc/self/limits', 'utf8')));
    if (soft === undefined || soft > 999_000) return; // nothing to exceed here
    const logged = await loggedBroker({ maxConnections: soft });
    broker = logged.broker;
    expect(logged.lines.some((l) => l.includes('"level":40') && l.includes('ulimit -n') && l.includes('--max-connections'))).toBe(true);
  });
});

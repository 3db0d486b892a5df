// A client's fault is never the broker's error (issue 19, item 5): aborted uploads, bad bodies, refused upgrades
// and floods are logged as throttled debug/info lines, the first of each kind at once and the rest counted into
// one line a second: never at error level, never with a stack, and never a line per event. Counted on a log
// destination of the test's own, at debug level (everything the broker writes). Before: 500 aborted
// `POST /api/publish` bodies in 2 s wrote 500 error-level lines with stack traces.
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { defaults, type Config } from '../../src/config.js';
import { startBroker, type Broker } from '../../src/broker.js';
import { TestClient } from '../helpers/client.js';
import { until } from '../helpers/waits.js';
import { statusOf } from './upgrade.js';

type Line = { level: number; msg: string; err?: { stack?: string }; repeated?: number };

let broker: Broker | undefined;
let lines: Line[] = [];
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

async function start(overrides: Partial<Config> = {}): Promise<Broker> {
  lines = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'debug', ...overrides };
  broker = await startBroker(config, { log: pino({ level: 'debug' }, sink), tcpPort: 0 });
  return broker;
}

/** The client ports of the requests `b`'s HTTP server parsed (their handlers then wait for the bodies). */
function requestsOf(b: Broker): Set<number> {
  const ports = new Set<number>();
  b.http.on('request', (req) => ports.add(req.socket.remotePort!));
  return ports;
}

/** A POST /api/publish that declares `Content-Length: 1000`, sends part of the body, and is cut once the broker has it. */
function abortedUpload(port: number, parsed: Set<number>): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(`POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"topic":"t","data":"`);
      until(() => parsed.has(s.localPort!), 'the upload at the broker').then(() => s.destroy(), () => s.destroy());
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve());
  });
}

/** Lines of the broker's log from now on, once the broker has read everything sent before (a request barrier). */
const since = (from: number) => lines.slice(from);
const problems = (ls: Line[]) => ls.filter((l) => l.level >= 50 || l.err?.stack !== undefined);

describe("clients' faults in the log", () => {
  it('500 aborted uploads in 2 s: no error, no stack, a handful of throttled debug lines; the API still answers', async () => {
    const b = await start();
    const parsed = requestsOf(b);
    const from = lines.length;
    const t0 = Date.now();
    for (let i = 0; i < 500; i += 50) await Promise.all(Array.from({ length: 50 }, () => abortedUpload(b.port, parsed)));
    const ok = await fetch(`http://127.0.0.1:${b.port}/api/publish`, { method: 'POST', body: JSON.stringify({ topic: 't', data: 1 }) });
    expect(ok.status).toBe(200);
    const logged = since(from);
    expect(problems(logged)).toEqual([]);
    const aborted = logged.filter((l) => /bad or cut-off body/.test(l.msg));
    expect(aborted.length).toBeGreaterThan(0);
    expect(aborted.length).toBeLessThanOrEqual(1 + Math.ceil((Date.now() - t0) / 1000)); // the first, then one a second
    expect(aborted.every((l) => l.level === 20)).toBe(true); // debug
    // Every abort is accounted for: the first line plus the counts of the summaries (one may be pending still).
    expect(1 + aborted.reduce((n, l) => n + (l.repeated ?? 0), 0)).toBeLessThanOrEqual(500);
  });

  it('bad bodies, refused origins, bad tokens and floods: counted into a few lines, none an error', async () => {
    const secret = 'client-faults-secret-long-enough-for-hs256';
    const b = await start({ allowedOrigins: 'https://app.example.com', authSecret: secret, apiKey: 'k', rate: 5, rateBurst: 5, rateStrikes: 2 });
    const url = `ws://127.0.0.1:${b.port}/ws`;
    const from = lines.length;
    const t0 = Date.now();
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`http://127.0.0.1:${b.port}/api/publish`, { method: 'POST', headers: { authorization: 'Bearer k' }, body: i % 2 ? '{"topic":' : '[1]' });
      expect(res.status).toBe(400);
    }
    for (let i = 0; i < 50; i++) expect(await statusOf(url, { origin: 'http://evil.example' })).toBe(403);
    for (let i = 0; i < 50; i++) expect(await statusOf(`${url}?token=forged`)).toBe(401);
    const { SignJWT } = await import('jose');
    const token = await new SignJWT({ sub: 'flooder' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    for (let i = 0; i < 10; i++) {
      const c = await TestClient.connect(`${url}?token=${token}`);
      for (let k = 0; k < 30; k++) c.send({ op: 'ping' });
      expect((await c.closed).code).toBe(1008);
    }
    const logged = since(from);
    expect(problems(logged)).toEqual([]);
    // Per kind, the first line and then one a second: a bound from how long this took (about 3 s on a quiet machine,
    // three times that on a loaded one), never a line per event (100 bad bodies, 50 refusals of each kind).
    const most = 1 + Math.ceil((Date.now() - t0) / 1000);
    for (const kind of [/bad or cut-off body/, /origin not allowed/, /upgrade refused: unauthorized/, /rate limit exceeded/]) {
      const of = logged.filter((l) => kind.test(l.msg));
      expect(of.length, String(kind)).toBeGreaterThan(0);
      expect(of.length, `${kind}: ${of.length} lines in ${Date.now() - t0} ms`).toBeLessThanOrEqual(most);
    }
  });
});

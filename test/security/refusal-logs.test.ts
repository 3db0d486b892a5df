// Every refusal the broker logs names the limit, its value and the flag that raises it, so whoever reads the log
// after a load test knows which setting they hit (the per-IP default of 1000 is the usual first one).
import { once } from 'node:events';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defaults, type Config } from '../../src/config.js';
import { startBroker, type Broker } from '../../src/broker.js';
import { RefusalLog, type Refusal } from '../../src/actors/admission.js';
import { TestClient } from '../helpers/client.js';
import { LineClient } from '../helpers/line-client.js';
import { statusOf, waitFor } from './upgrade.js';

type Entry = { level: number; msg: string; flag?: string; limit?: string; value?: unknown };

let broker: Broker | undefined;
let logs: Entry[];
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

async function start(overrides: Partial<Config>): Promise<{ url: string; tcpPort: number }> {
  logs = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'info', ...overrides };
  broker = await startBroker(config, { log: pino({ level: 'info' }, sink), tcpPort: 0 });
  return { url: `ws://127.0.0.1:${broker.port}/ws`, tcpPort: broker.tcpPort };
}

/** A TCP connection the broker is expected to refuse: resolves once it has closed. */
async function tcpRefused(port: number): Promise<void> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.resume();
  await once(socket, 'close');
}

/** The one log line about a refusal matching `what`, once it is there. */
async function refusal(what: RegExp): Promise<Entry> {
  await waitFor(() => logs.some((l) => what.test(l.msg)));
  return logs.find((l) => what.test(l.msg))!;
}

describe('refusal logs name their limit, its value and its flag', () => {
  it('WebSocket upgrade over the per-IP and the total limit', async () => {
    const { url } = await start({ maxConnectionsPerIp: 1, maxConnections: 2 });
    const a = await TestClient.connect(url);
    expect(await statusOf(url)).toBe(429);
    const perIp = await refusal(/connections refused/);
    expect(perIp.msg).toMatch(/1 connection.* per IP address.*--max-connections-per-ip/);
    expect(perIp).toMatchObject({ flag: '--max-connections-per-ip', value: 1 });
    const b = await TestClient.connect(`${url}`, { localAddress: '127.0.0.2' });
    logs.length = 0;
    expect(await statusOf(url, { localAddress: '127.0.0.3' })).toBe(503);
    const total = await refusal(/connections refused/);
    expect(total.msg).toMatch(/2 connections in total.*--max-connections\b/);
    expect(total).toMatchObject({ flag: '--max-connections', value: 2 });
    a.close();
    b.close();
  });

  it('TCP connection over the per-IP limit', async () => {
    const { tcpPort } = await start({ maxConnectionsPerIp: 1 });
    const a = await LineClient.connect(tcpPort);
    await tcpRefused(tcpPort);
    const entry = await refusal(/connections refused/);
    expect(entry.msg).toMatch(/1 connection.* per IP address.*--max-connections-per-ip/);
    expect(entry).toMatchObject({ flag: '--max-connections-per-ip', value: 1 });
    a.close();
  });

  it('TCP connection over the total limit', async () => {
    const { url, tcpPort } = await start({ maxConnections: 1 });
    const a = await TestClient.connect(url);
    await tcpRefused(tcpPort);
    const entry = await refusal(/connections refused/);
    expect(entry.msg).toMatch(/1 connection.* in total.*--max-connections\b/);
    expect(entry).toMatchObject({ flag: '--max-connections', value: 1 });
    a.close();
  });

  it('upgrade from an origin that is not allowed', async () => {
    const { url } = await start({ allowedOrigins: 'https://app.example.com' });
    expect(await statusOf(url, { origin: 'http://evil.example' })).toBe(403);
    const entry = await refusal(/upgrade refused/);
    expect(entry.msg).toMatch(/https:\/\/app\.example\.com.*--allowed-origins/);
    expect(entry).toMatchObject({ flag: '--allowed-origins', value: 'https://app.example.com' });
  });

  it('a flooding client closed for its rate', async () => {
    const { url } = await start({ rate: 1, rateBurst: 1, rateStrikes: 3 });
    const c = await TestClient.connect(url);
    for (let i = 0; i < 10; i++) c.send({ op: 'ping', id: i });
    expect((await c.closed).code).toBe(1008);
    const entry = await refusal(/rate limit/);
    expect(entry.msg).toMatch(/over 1 frames\/s \(--rate\) refused 3 times within 10 s \(--rate-strikes\)/);
    expect(entry).toMatchObject({ flag: '--rate, --rate-strikes' });
  });
});

describe('RefusalLog', () => {
  it('a flood of refusals is one line an interval, with its count: the first at once, the rest summed when the interval ends', () => {
    vi.useFakeTimers();
    try {
      const lines: { refused: number; open: number; msg: string }[] = [];
      const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
      const refusals = new RefusalLog(log, 1000);
      const full: Refusal = { status: 503, statusText: 'Service Unavailable', message: 'server full', limit: 'in total', value: 20, flag: '--max-connections' };
      for (let i = 0; i < 5; i++) refusals.record(full, 20);
      expect(lines.map((l) => l.refused)).toEqual([1]);
      expect(lines[0]!.msg).toBe('connections refused (1): 20 connections in total reached (raise with --max-connections)');
      vi.advanceTimersByTime(999);
      expect(lines.map((l) => l.refused)).toEqual([1]);
      vi.advanceTimersByTime(1);
      expect(lines.map((l) => l.refused)).toEqual([1, 4]);
      // A quiet interval: no line, and the next refusal is reported at once again.
      vi.advanceTimersByTime(5000);
      expect(lines.map((l) => l.refused)).toEqual([1, 4]);
      refusals.record(full, 19);
      expect(lines.map((l) => [l.refused, l.open])).toEqual([[1, 20], [4, 20], [1, 19]]);
    } finally {
      vi.useRealTimers();
    }
  });
});

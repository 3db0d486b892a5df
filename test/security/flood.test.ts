// Rate limiting: a flooding client gets rate_limited errors, then close 1008; and while it floods, another
// client's delivery latency stays close to what it is without the flooder (compared as a ratio in one run).
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Config } from '../../src/config.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

/** `count` copies of one client→server text frame, masked with a zero key (valid, and free to build). */
function maskedFrames(text: string, count: number): Buffer {
  const payload = Buffer.from(text);
  if (payload.length >= 126) throw new Error('keep flood frames short');
  const one = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
  return Buffer.concat(Array.from({ length: count }, () => one));
}

/** Writes pre-built frames straight to the socket as fast as the broker reads them, until the socket closes. */
async function flood(url: string): Promise<{ ws: WebSocket; stop: () => void; closed: Promise<number>; errors: () => string[] }> {
  const ws = new WebSocket(url);
  const errors: string[] = [];
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    if (f.op === 'error') errors.push(f.code);
  });
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  await new Promise((r) => ws.once('open', r));
  const socket = (ws as unknown as { _socket: Socket })._socket;
  const chunk = maskedFrames(JSON.stringify({ op: 'pub', topic: 'flood', data: 'x'.repeat(60) }), 200);
  let running = true;
  const pump = () => {
    while (running && !socket.destroyed && socket.writable) {
      if (!socket.write(chunk)) return void socket.once('drain', pump);
    }
  };
  setImmediate(pump);
  return { ws, stop: () => (running = false), closed, errors: () => errors };
}

/**
 * Median time from a publisher's pub to a subscriber's msg, over `n` messages sent one after another.
 * Messages not delivered within the time budget count as infinitely late (a starved victim).
 */
async function victimLatency(pub: TestClient, sub: TestClient, n = 40, budgetMs = 1000): Promise<number> {
  const samples: number[] = [];
  const deadline = performance.now() + budgetMs;
  for (let i = 0; i < n; i++) {
    const left = deadline - performance.now();
    const t0 = performance.now();
    pub.send({ op: 'pub', topic: 'victim', data: i });
    const got = left > 0 && (await sub.next((f) => f.op === 'msg' && f.data === i, left).then(() => true, () => false));
    samples.push(got ? performance.now() - t0 : Infinity);
    if (!got) break; // starved: the rest would be later still
  }
  while (samples.length < n) samples.push(Infinity);
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

/** Readers on the flood topic, so an unlimited flood costs real fan-out work. */
async function floodAudience(url: string, n: number): Promise<WebSocket[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const ws = new WebSocket(`${url}/flood`);
      ws.on('message', () => {});
      await new Promise((r) => ws.once('open', r));
      return ws;
    }),
  );
}

async function ratioWithFlooder(settings: Partial<Config>): Promise<{ ratio: number; base: number; flooded: number; flooderClose: number | 'open' }> {
  // Mailboxes big enough that the flooder is never closed as a slow reader of its own acks: only the rate limit may stop it.
  broker = await startTestBroker({ ...settings, mailboxSize: 1_000_000, closeTimeoutMs: 100 });
  const audience = await floodAudience(broker.url, 20);
  const pub = await TestClient.connect(broker.url);
  const sub = await TestClient.connect(`${broker.url}/victim`);
  await victimLatency(pub, sub, 20); // warm-up
  const base = await victimLatency(pub, sub);
  sub.all.length = 0;
  const f = await flood(broker.url);
  await new Promise((r) => setTimeout(r, 50)); // the flood is under way
  const flooded = await victimLatency(pub, sub);
  pub.ws.terminate();
  sub.ws.terminate();
  const flooderClose = await Promise.race([f.closed, Promise.resolve('open' as const)]);
  f.stop();
  f.ws.terminate();
  for (const a of audience) a.terminate();
  await broker.close();
  broker = undefined;
  return { ratio: flooded / base, base, flooded, flooderClose };
}

describe('inbound rate limit', () => {
  it('a flooder gets rate_limited errors (with the frame id), then is closed with 1008; a bystander is untouched', async () => {
    broker = await startTestBroker({ rate: 50, rateBurst: 20, rateStrikes: 30 });
    const bystander = await TestClient.connect(broker.url);
    const flooder = await TestClient.connect(broker.url);
    for (let i = 0; i < 200; i++) flooder.send({ op: 'ping', id: i });
    const first = await flooder.next((f) => f.op === 'error');
    expect(first).toMatchObject({ code: 'rate_limited' });
    expect(first.id).toBeGreaterThanOrEqual(20); // the burst of 20 passed
    const { code, reason } = await flooder.closed;
    expect(code).toBe(1008);
    expect(reason).toBe('rate limit exceeded');
    const limited = flooder.all.filter((f) => f.op === 'error' && f.code === 'rate_limited');
    expect(limited.length).toBeGreaterThan(0);
    expect(limited.length).toBeLessThanOrEqual(30); // bounded: no errors after the strikes
    expect(broker.hub.stats.errors.get('rate_limited')).toBe(limited.length);
    expect(await bystander.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    bystander.close();
  });

  it('WebSocket ping control frames spend tokens too: a ping flood is limited and closed with 1008', async () => {
    broker = await startTestBroker({ rate: 50, rateBurst: 20, rateStrikes: 30 });
    const flooder = await TestClient.connect(broker.url);
    for (let i = 0; i < 200; i++) flooder.ws.ping();
    expect(await flooder.next((f) => f.op === 'error')).toMatchObject({ code: 'rate_limited' });
    expect((await flooder.closed).code).toBe(1008);
  });

  it('a client that keeps within the rate is never limited', async () => {
    broker = await startTestBroker({ rate: 200, rateBurst: 10, rateStrikes: 5 });
    const c = await TestClient.connect(broker.url);
    for (let i = 0; i < 30; i++) {
      expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
      await new Promise((r) => setTimeout(r, 6));
    }
    expect(c.all.some((f) => f.op === 'error')).toBe(false);
    c.close();
  });

  it("a flooder does not slow a victim's delivery: median latency with / without the flooder < 3x", async () => {
    // The flood is refused past the bucket and, past the strikes, the flooder is closed: the victim hardly notices.
    const limited = await ratioWithFlooder({ rate: 100, rateBurst: 100, rateStrikes: 100 });
    // The same flood with limiting off, for comparison (printed, and it must be the worse of the two).
    const unlimited = await ratioWithFlooder({ rate: 0 });
    console.log(
      `victim median latency: limited ${limited.base.toFixed(2)} → ${limited.flooded.toFixed(2)} ms (x${limited.ratio.toFixed(2)}); ` +
        `unlimited ${unlimited.base.toFixed(2)} → ${unlimited.flooded.toFixed(2)} ms (x${unlimited.ratio.toFixed(2)})`,
    );
    expect(limited.flooderClose).toBe(1008);
    expect(limited.ratio).toBeLessThan(3);
    expect(unlimited.ratio).toBeGreaterThan(limited.ratio);
  });
});

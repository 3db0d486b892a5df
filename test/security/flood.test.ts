// Rate limiting: a flooding client gets rate_limited errors, then close 1008; meanwhile other clients get every
// message. Behaviour only: latency under a flood is a timing comparison, measured in test/bench/flood-latency.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { flood, floodAudience } from '../helpers/flood.js';

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

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

  it('a raw-socket flooder is refused and closed with 1008 while a victim gets every message, in order', async () => {
    const strikes = 100;
    // Mailboxes big enough that the flooder is never closed as a slow reader: only the rate limit may stop it.
    broker = await startTestBroker({ rate: 100, rateBurst: 100, rateStrikes: strikes, mailboxSize: 1_000_000, closeTimeoutMs: 100 });
    const audience = await floodAudience(broker.url, 20);
    const pub = await TestClient.connect(broker.url);
    const sub = await TestClient.connect(`${broker.url}/victim`);
    const f = await flood(broker.url);
    try {
      // Publish while the flood is under way: the flooder has already been refused at least once.
      await until(() => f.errors().length > 0, 10_000);
      const n = 50; // within the publisher's own burst
      for (let i = 0; i < n; i++) pub.send({ op: 'pub', topic: 'victim', data: i });
      await sub.next((m) => m.op === 'msg' && m.data === n - 1, 15_000);
      expect(sub.all.filter((m) => m.op === 'msg' && m.topic === 'victim').map((m) => m.data)).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(pub.all.some((m) => m.op === 'error')).toBe(false);

      expect(await f.closed).toBe(1008);
      const errors = f.errors();
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.length).toBeLessThanOrEqual(strikes); // bounded: no errors after the strikes
      expect(new Set(errors)).toEqual(new Set(['rate_limited']));
      expect(broker.hub.stats.errors.get('rate_limited')).toBeLessThanOrEqual(strikes);
    } finally {
      f.stop();
      f.ws.terminate();
      for (const a of audience) a.terminate();
      pub.close();
      sub.close();
    }
  });
});

async function until(probe: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

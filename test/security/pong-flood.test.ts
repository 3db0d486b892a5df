// A client that sends WebSocket pings and never reads: every ping is answered with a pong, outside the mailbox and
// its byte bound, and every ping counts as the client being alive — so before pongs were coalesced under congestion
// the broker's buffer for that socket grew without end (11 MB in 3 s here) and nothing ever closed it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { keepSocket, socketOf } from '../helpers/ws-socket.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  // A high --rate only makes the flood fast for the test; at the default 1,000 pings a second it grew ~127 KB/s, forever.
  broker = await startTestBroker({ rate: 1_000_000, rateBurst: 1_000_000 });
});
afterAll(() => broker.close());

describe('pings from a client that never reads', () => {
  it('are answered, but while its socket is congested only the latest gets a pong: the broker holds a bounded number of bytes for it', async () => {
    const ws = keepSocket(new WebSocket(broker.url));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.pause(); // never read again
    const link = [...broker.hub.sessions()].find((s) => s.transport === 'ws')!;
    const payload = Buffer.alloc(125, 0x61);
    let peak = 0;
    // 60,000 pings (7.6 MB of pongs owed); then one text frame: once the broker has read it, it has read every ping.
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 2000; i++) ws.ping(payload);
      await until(() => !socketOf(ws).writableNeedDrain || link.framesIn > 0, 'the broker reading the pings', 20_000);
      peak = Math.max(peak, link.wire.bufferedBytes);
    }
    ws.send(JSON.stringify({ op: 'sub', topic: 'after/pings' }));
    await until(() => link.framesIn === 1, 'the broker reading everything sent', 20_000);
    peak = Math.max(peak, link.wire.bufferedBytes);
    // Node's own write buffer stops at its high-water mark (16 KB) plus a frame; the kernel holds the rest it took.
    expect(peak).toBeLessThan(64 * 1024);
    expect(link.state).toBe('online'); // answered, not punished: a client may ping
    // The latest ping's pong waits for the drain: once the client reads again, it comes.
    const last = new Promise<string>((resolve) => ws.on('pong', (d) => d.toString() === 'last' && resolve('last')));
    ws.ping('last');
    await until(() => link.wire.bufferedBytes > 0, 'the broker still congested');
    ws.resume();
    expect(await last).toBe('last');
    ws.terminate();
  }, 60_000);
});

describe('unsolicited pongs from a client', () => {
  it('spend the inbound rate as pings do: a flood of them is closed 1008 (they were never counted: found by a review helper)', async () => {
    const limited = await startTestBroker({ rate: 100, rateBurst: 100, rateStrikes: 100 });
    try {
      const ws = new WebSocket(limited.url);
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      for (let i = 0; i < 5000; i++) ws.pong(Buffer.from('x'));
      expect(await closed).toBe(1008);
    } finally {
      await limited.close();
    }
  });
});

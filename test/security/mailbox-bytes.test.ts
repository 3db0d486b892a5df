// Mailboxes are bounded in bytes as well as in messages: a few big frames make a slow consumer long before the
// message bound would (before the fix, 1000 queued 60 KB messages = 60 MB per stalled reader were fine).
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Mailbox, type Wire } from '../../src/actors/mailbox.js';
import { Outgoing } from '../../src/protocol/outgoing.js';
import { wsTextFrame } from '../../src/transports/ws/frame.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { waitFor } from './upgrade.js';

/** A wire whose socket is always congested: everything stays in the mailbox. */
class StuckWire implements Wire {
  readonly transport = 'ws' as const;
  readonly canPing = true;
  readonly bufferedBytes = 0;
  encode(out: Outgoing): Buffer {
    return out.bytesFor(wsTextFrame);
  }
  write(): boolean {
    return false;
  }
  onDrain(): void {}
  ping(): void {}
  close(): void {}
  terminate(): void {}
}

const big = (seq: number) => new Outgoing({ op: 'msg', topic: 't', seq, epoch: 'e.1', data: 'x'.repeat(10_000), ts: 0 });
const turn = () => new Promise((r) => setImmediate(r));

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

describe('mailbox byte bound', () => {
  it('close policy: over the byte bound (far under the message bound) is a slow consumer', async () => {
    let slow = 0;
    const box = new Mailbox(new StuckWire(), { messages: 1000, bytes: 50_000 }, 'close', { slowConsumer: () => slow++ });
    box.push(big(1));
    await turn(); // written once, now congested: the rest queues
    for (let i = 2; i <= 5; i++) expect(box.push(big(i))).toBe(true); // 4 × ~10 KB
    expect(box.bytes).toBeLessThanOrEqual(50_000);
    expect(box.push(big(6))).toBe(false);
    expect(slow).toBe(1);
    expect(box.isSealed).toBe(true);
  });

  it('drop-oldest policy: the oldest frames go until the new one fits; bytes stay within the bound', async () => {
    const box = new Mailbox(new StuckWire(), { messages: 1000, bytes: 50_000 }, 'drop-oldest', { slowConsumer: () => {} });
    box.push(big(0));
    await turn();
    for (let i = 1; i <= 100; i++) box.push(big(i));
    expect(box.bytes).toBeLessThanOrEqual(50_000);
    expect(box.depth).toBe(4);
    expect(box.dropped).toBe(96);
    // One frame bigger than the bound still goes through an empty mailbox (the payload limit bounds it elsewhere).
    const lone = new Mailbox(new StuckWire(), { messages: 10, bytes: 1_000 }, 'close', { slowConsumer: () => {} });
    expect(lone.push(big(1))).toBe(true);
  });

  it('over a socket: a stalled reader of 60 KB messages is closed with 4001 at --mailbox-bytes; a reading victim gets them all', async () => {
    broker = await startTestBroker({ mailboxBytes: 1024 * 1024, mailboxSize: 1000, closeTimeoutMs: 300 });
    const open = (ws: WebSocket) => new Promise((r) => ws.once('open', r));
    const stalled = new WebSocket(`${broker.url}/big`);
    const victim = new WebSocket(`${broker.url}/big`);
    let received = 0;
    victim.on('message', (d: Buffer) => {
      if (d.toString('latin1', 0, 12) === '{"op":"msg",') received++;
    });
    const stalledClose = new Promise<number>((r) => stalled.on('close', (code) => r(code)));
    await Promise.all([open(stalled), open(victim)]);
    await waitFor(() => broker!.hub.inspect.reached('big').length === 2);
    stalled.pause();
    const payload = 'p'.repeat(60 * 1024);
    const N = 300; // 18 MB: past what loopback buffers absorb, far under 1000 messages
    let peak = 0;
    for (let i = 0; i < N; i++) {
      broker.hub.publish('big', payload);
      for (const l of broker.hub.inspect.reached('big')) peak = Math.max(peak, l.mailbox.bytes);
      // Paced on the reading victim, as a real publisher behind its own socket would be.
      while (received < i - 8) await turn();
    }
    await waitFor(() => received === N, 10_000);
    stalled.resume();
    await waitFor(() => broker!.hub.stats.slowConsumerCloses === 1, 5000);
    expect([4001, 1006]).toContain(await stalledClose);
    expect(peak).toBeLessThanOrEqual(1024 * 1024);
    expect(victim.readyState).toBe(WebSocket.OPEN);
    victim.terminate();
  }, 20_000);
});

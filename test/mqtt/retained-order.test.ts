// A subscription's retained messages are read from the store while live messages of its topics keep coming: those
// are held until the read ends, then queued behind the retained ones. When the connection ends during the read, the
// held messages are reported as not sent (a persistent session moves a position-less topic's position before them,
// so its resume delivers them), whether the read ends before or after the session is kept.
import { describe, expect, it } from 'vitest';
import { RetainedReads, type RetainedRead } from '../../src/transports/mqtt/retained-order.js';
import type { Retained, RetainedStore } from '../../src/transports/mqtt/store.js';
import { Outgoing } from '../../src/protocol/outgoing.js';

const live = (seq: number) => new Outgoing({ op: 'msg', topic: 'r/t', seq, epoch: 'e', data: seq, ts: 0 });

function setup() {
  let open = true;
  let answer: (messages: Retained[]) => void = () => {};
  const store = { matching: () => new Promise<Retained[]>((r) => (answer = r)), set: async () => {} } as unknown as RetainedStore;
  const requeued: number[] = [];
  const unsent: number[] = [];
  const ended: RetainedRead[] = [];
  const reads = new RetainedReads({
    open: () => open,
    requeue: (out) => requeued.push((out.frame as { seq: number }).seq),
    unsent: (held) => unsent.push(...held.map((o) => (o.frame as { seq: number }).seq)),
    retained: () => {},
    ended: (read) => ended.push(read),
  });
  return { reads, store, requeued, unsent, ended, close: () => (open = false), answer: (m: Retained[]) => answer(m) };
}

describe('retained reads and the live messages they hold', () => {
  it('open: held messages are queued again, in order, when the read ends', async () => {
    const t = setup();
    t.reads.start(t.store, 'r/#', 1);
    expect(t.reads.hold(live(1), 'r/t')).toBe(true);
    expect(t.reads.hold(live(2), 'r/t')).toBe(true);
    expect(t.reads.held.map((o) => (o.frame as { seq: number }).seq)).toEqual([1, 2]);
    t.answer([]);
    await new Promise((r) => setImmediate(r));
    t.reads.end(t.ended[0]!);
    expect(t.requeued).toEqual([1, 2]);
    expect(t.unsent).toEqual([]);
    expect(t.reads.held).toEqual([]);
  });

  it('the connection ends during the read: what it held is reported unsent, not queued', async () => {
    const t = setup();
    t.reads.start(t.store, 'r/#', 1);
    t.reads.hold(live(3), 'r/t');
    t.close();
    t.answer([]);
    await new Promise((r) => setImmediate(r));
    expect(t.unsent).toEqual([3]);
    expect(t.requeued).toEqual([]);
  });
});

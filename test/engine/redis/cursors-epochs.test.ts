// The bus cursors across epochs, with a stand-in for the topic's stream and meta: a message of another epoch than a
// topic's cursor is followed only when the topic's meta, read after the message came, names its epoch; a message of
// an epoch the topic left (it came late: the bus and the stream reads travel on different connections) is dropped,
// never taking the cursor back (test/cluster/stale-epoch.test.ts does it over a real Redis).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Cursors, parseBusMessage, type BusMessage } from '../../../src/engine/redis/cursors.js';

const log = pino({ level: 'silent' });
const entry = (topic: string, seq: number, epoch: string) => `mn1\nws\n\n\n${JSON.stringify({ op: 'msg', topic, seq, epoch, data: seq })}`;
const bus = (seq: number, epoch: string): BusMessage => parseBusMessage(entry('a', seq, epoch).slice(1))!;

/**
 * Topic `a` whose meta names `meta.epoch` and whose stream holds seqs 1..`meta.seq` of it; a read may be held (`gate`)
 * to order it against the bus. Deliveries are recorded as `<epoch>:<seq>`.
 */
function setup() {
  const meta = { epoch: 'e1', seq: 0 };
  const delivered: string[] = [];
  const reads: number[] = [];
  let gate: Promise<void> | undefined;
  const cursors = new Cursors({
    deliver: (m) => delivered.push(`${m.epoch}:${m.seq}`),
    read: async (_topic, from, count) => {
      const { epoch, seq } = meta; // read when the read starts, as Redis would when the script runs
      reads.push(from);
      if (gate) await gate;
      const flat: string[] = [];
      for (let s = from; s <= seq && flat.length < 2 * count; s++) flat.push(`0-${s}`, entry('a', s, epoch));
      return [String(seq), epoch, null, ...flat];
    },
    closed: () => false,
    log,
    retryMs: 5,
  });
  const hold = () => {
    let release!: () => void;
    gate = new Promise<void>((r) => (release = r));
    return () => {
      gate = undefined;
      release();
    };
  };
  return { cursors, meta, delivered, reads, hold };
}

describe('Cursors across epochs', () => {
  it('moved to the new epoch by a read of the stream, a late message of the old one is dropped and the new one goes on', async () => {
    const { cursors, meta, delivered } = setup();
    Object.assign(meta, { epoch: 'e1', seq: 3 });
    for (const s of [1, 2, 3]) cursors.receive(bus(s, 'e1'));
    // The meta was lost (or Redis failed over): e2 began; this node's fill finds it before the bus brings e1:4.
    Object.assign(meta, { epoch: 'e2', seq: 2 });
    cursors.fillNow('a');
    await expect.poll(() => delivered).toEqual(['e1:1', 'e1:2', 'e1:3', 'e2:1', 'e2:2']);
    cursors.receive(bus(4, 'e1'));
    cursors.receive(bus(1, 'e2'));
    cursors.receive(bus(2, 'e2'));
    cursors.receive(bus(3, 'e2'));
    expect(delivered).toEqual(['e1:1', 'e1:2', 'e1:3', 'e2:1', 'e2:2', 'e2:3']);
    expect(cursors.staleDropped).toBe(1);
  });

  it('a read answered from the old lineage (a stale master) does not take the cursor back', async () => {
    const { cursors, meta, delivered, reads } = setup();
    Object.assign(meta, { epoch: 'e1', seq: 2 });
    cursors.receive(bus(1, 'e1'));
    cursors.receive(bus(2, 'e1'));
    Object.assign(meta, { epoch: 'e2', seq: 1 });
    cursors.receive(bus(1, 'e2'));
    await expect.poll(() => delivered).toEqual(['e1:1', 'e1:2', 'e2:1']);
    await new Promise((r) => setImmediate(r)); // that fill is over
    const before = reads.length;
    Object.assign(meta, { epoch: 'e1', seq: 5 }); // the command connection reads where e1 went on
    cursors.fillNow('a');
    await expect.poll(() => reads.length).toBe(before + 1);
    await new Promise((r) => setImmediate(r)); // its answer handled
    expect(delivered).toEqual(['e1:1', 'e1:2', 'e2:1']);
    Object.assign(meta, { epoch: 'e2', seq: 2 });
    cursors.receive(bus(2, 'e2'));
    expect(delivered).toEqual(['e1:1', 'e1:2', 'e2:1', 'e2:2']);
  });

  it('a message of an epoch this node never followed, older than the one it follows, is dropped once the meta says so', async () => {
    const { cursors, meta, delivered, reads } = setup();
    Object.assign(meta, { epoch: 'e2', seq: 1 });
    cursors.receive(bus(1, 'e2'));
    cursors.receive(bus(7, 'e1')); // published before e2 began, late: the meta still names e2
    await expect.poll(() => cursors.staleDropped).toBe(1);
    expect(reads.length).toBe(1);
    // Later ones of e1 are dropped without a read; e2 goes on.
    cursors.receive(bus(8, 'e1'));
    cursors.receive(bus(2, 'e2'));
    expect(delivered).toEqual(['e2:1', 'e2:2']);
    expect(cursors.staleDropped).toBe(2);
    expect(reads.length).toBe(1);
  });

  it('a new epoch is judged by a read started after its message came, not by one already out', async () => {
    const { cursors, meta, delivered, hold } = setup();
    Object.assign(meta, { epoch: 'e1', seq: 2 });
    cursors.receive(bus(1, 'e1'));
    const release = hold();
    cursors.catchUp(); // a read out, answered as of e1
    Object.assign(meta, { epoch: 'e2', seq: 1 });
    cursors.receive(bus(1, 'e2')); // came after that read started: e1 in its answer says nothing of e2
    release();
    await expect.poll(() => delivered).toEqual(['e1:1', 'e1:2', 'e2:1']);
    expect(cursors.staleDropped).toBe(0);
    cursors.receive(bus(2, 'e2'));
    expect(delivered.at(-1)).toBe('e2:2');
  });

  it('the first message of a topic listened on in another epoch than its baseline: followed from seq 1 when current, dropped when stale', async () => {
    const { cursors, meta, delivered } = setup();
    Object.assign(meta, { epoch: 'e2', seq: 2 });
    cursors.listening('a', 'e2', 2);
    cursors.receive(bus(5, 'e1')); // stale: published before e2 began
    cursors.receive(bus(3, 'e2'));
    await expect.poll(() => delivered).toEqual(['e2:3']);
    expect(cursors.staleDropped).toBe(1);

    const next = setup();
    Object.assign(next.meta, { epoch: 'e3', seq: 2 });
    next.cursors.listening('a', 'e2', 6);
    next.cursors.receive(bus(2, 'e3')); // e3 began since the baseline: from its seq 1
    await expect.poll(() => next.delivered).toEqual(['e3:1', 'e3:2']);
    expect(next.cursors.staleDropped).toBe(0);
  });

  it('a read that finds no meta (Redis lost it) judges nothing: the other epoch waits for a read that names one', async () => {
    const { cursors, meta, delivered, reads } = setup();
    Object.assign(meta, { epoch: 'e1', seq: 1 });
    cursors.receive(bus(1, 'e1'));
    const gone = { epoch: null as unknown as string, seq: 0 };
    Object.assign(meta, gone);
    cursors.receive(bus(1, 'e2'));
    await expect.poll(() => reads.length).toBe(1);
    expect(delivered).toEqual(['e1:1']);
    Object.assign(meta, { epoch: 'e2', seq: 2 });
    cursors.receive(bus(2, 'e2'));
    await expect.poll(() => delivered).toEqual(['e1:1', 'e2:1', 'e2:2']);
  });

  it('a topic forgotten while its fill reads delivers nothing of that read', async () => {
    const { cursors, meta, delivered, hold } = setup();
    Object.assign(meta, { epoch: 'e1', seq: 1 });
    cursors.receive(bus(1, 'e1'));
    const release = hold();
    Object.assign(meta, { epoch: 'e1', seq: 3 });
    cursors.fillNow('a');
    cursors.keepOnly(() => false); // no longer heard
    release();
    await new Promise((r) => setImmediate(r));
    expect(delivered).toEqual(['e1:1']);
  });
});

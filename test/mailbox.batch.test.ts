// The writer's per-turn batch: mailboxes holding the same frames share one concatenated chunk, and a
// mailbox holding different frames still gets exactly its own bytes, in order.
import { describe, expect, it } from 'vitest';
import { Mailbox, type Wire } from '../src/actors/mailbox.js';
import { Outgoing } from '../src/protocol/outgoing.js';
import { wsTextFrame } from '../src/transports/ws/frame.js';

class RecordingWire implements Wire {
  readonly transport = 'ws' as const;
  readonly canPing = true;
  readonly bufferedBytes = 0;
  readonly chunks: Buffer[] = [];
  constructor(readonly sharedEncoding: boolean) {}
  encode(out: Outgoing): Buffer {
    return out.bytesFor(wsTextFrame);
  }
  write(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return true;
  }
  onDrain(): void {}
  ping(): void {}
  close(): void {}
  terminate(): void {}
}

const turn = () => new Promise((r) => setImmediate(r));
const msg = (seq: number) => new Outgoing({ op: 'msg', topic: 't', seq, epoch: 'e1', data: seq, ts: 0 });
const bytesOf = (...outs: Outgoing[]) => Buffer.concat(outs.map((o) => o.bytesFor(wsTextFrame)));

describe('Mailbox batches', () => {
  it('mailboxes with the same queued frames write identical bytes; a different queue gets its own', async () => {
    const [a, b, c] = [msg(1), msg(2), msg(3)];
    const wires = [new RecordingWire(true), new RecordingWire(true), new RecordingWire(true), new RecordingWire(false)];
    const boxes = wires.map((w) => new Mailbox(w, { messages: 100, bytes: 1 << 30 }, 'close', { slowConsumer: () => {} }));
    for (const out of [a, b, c]) for (const i of [0, 1, 3]) boxes[i]!.push(out);
    for (const out of [c, b, a]) boxes[2]!.push(out); // same length, other order
    await turn();
    expect(wires[0]!.chunks).toEqual([bytesOf(a, b, c)]);
    expect(wires[1]!.chunks).toEqual([bytesOf(a, b, c)]);
    expect(wires[2]!.chunks).toEqual([bytesOf(c, b, a)]);
    expect(wires[3]!.chunks).toEqual([bytesOf(a, b, c)]);
    // Next turn: a new batch, not the previous turn's bytes.
    for (const box of boxes) {
      box.push(c);
      box.push(a);
    }
    await turn();
    for (const w of wires) expect(w.chunks.at(-1)).toEqual(bytesOf(c, a));
  });
});

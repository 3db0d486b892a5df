// The writer's per-turn batch: mailboxes holding the same frames share one concatenated chunk, and a
// mailbox holding different frames still gets exactly its own bytes, in order.
import { describe, expect, it } from 'vitest';
import { Mailbox, type Wire } from '../src/actors/mailbox.js';
import { Outgoing } from '../src/protocol/outgoing.js';
import { wsTextFrame, wsTextFrameSize, writeWsTextFrame } from '../src/transports/ws/frame.js';

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

/** A WebSocket wire as the transport's: a turn's frames written into one chunk (encodeInto), no buffer per frame. */
class IntoWire extends RecordingWire {
  constructor() {
    super(true);
  }
  encodedSize(out: Outgoing): number {
    return wsTextFrameSize(out);
  }
  encodeInto(out: Outgoing, buf: Buffer, at: number): number {
    return writeWsTextFrame(out, buf, at);
  }
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

  it('a wire that writes frames into one chunk writes the same bytes as one buffer per frame, of every header size and non-ASCII', async () => {
    const outs = [msg(1), new Outgoing({ op: 'msg', topic: 'é/t', seq: 2, epoch: 'e1', data: 'ü'.repeat(200), ts: 0 }), new Outgoing({ op: 'msg', topic: 't', seq: 3, epoch: 'e1', data: 'x'.repeat(70_000), ts: 0 }), msg(4)];
    const into = new IntoWire();
    const plain = new RecordingWire(false);
    const boxes = [into, plain].map((w) => new Mailbox(w, { messages: 100, bytes: 1 << 30 }, 'close', { slowConsumer: () => {} }));
    for (const out of outs) for (const box of boxes) box.push(out);
    await turn();
    expect(into.chunks).toHaveLength(1);
    expect(into.chunks[0]!.equals(bytesOf(...outs))).toBe(true);
    expect(into.chunks[0]!.equals(plain.chunks[0]!)).toBe(true);
    // Headers of 2, 4 and 10 bytes.
    expect(outs.map((o) => wsTextFrameSize(o) - o.bytes)).toEqual([2, 4, 10, 2]);
  });
});

describe('Mailbox discard', () => {
  it('tells the wire which frames it drops unwritten, in order (MQTT moves its session positions back before them)', async () => {
    class CongestedWire extends RecordingWire {
      unsentSeen: number[] = [];
      override write(chunk: Buffer): boolean {
        super.write(chunk);
        return false; // the socket is congested: what comes next waits in the mailbox
      }
      unsent(queue: readonly Outgoing[]): void {
        this.unsentSeen.push(...queue.map((o) => (o.frame as { seq: number }).seq));
      }
    }
    const wire = new CongestedWire(false);
    const box = new Mailbox(wire, { messages: 100, bytes: 1 << 30 }, 'close', { slowConsumer: () => {} });
    box.push(msg(1));
    await turn(); // written; the socket is now congested
    box.push(msg(2));
    box.push(msg(3));
    await turn();
    expect(wire.chunks).toEqual([bytesOf(msg(1))]);
    box.discard(); // the connection ended
    expect(wire.unsentSeen).toEqual([2, 3]);
    box.discard();
    expect(wire.unsentSeen).toEqual([2, 3]); // once
  });
});

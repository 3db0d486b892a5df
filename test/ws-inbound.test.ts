// WebSocket frames as a client may put them on the wire: raw frames are written straight onto a real client's socket
// (the test's own ws client's, its only use of that client's insides), so one TCP write can hold many frames, a frame
// can be cut anywhere, and frames can be what no well-behaved client sends; the answers must be the protocol's (acks
// in order, 1002, 1007, 1009, pongs, bad_frame).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Duplex } from 'node:stream';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient, type Frame } from './helpers/client.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ maxPayload: 2048 });
});
afterAll(async () => {
  await broker.close();
});

const TEXT = 0x1;
const CONTINUATION = 0x0;
const BINARY = 0x2;
const CLOSE = 0x8;
const PING = 0x9;

/** A client frame: masked (unless `masked: false`), FIN set unless `fin: false`, `rsv` bits as given. */
function frame(opcode: number, payload: Buffer | string, opts: { fin?: boolean; masked?: boolean; rsv?: number } = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const masked = opts.masked !== false;
  const len = data.length;
  const lenBytes = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lenBytes + (masked ? 4 : 0));
  head[0] = (opts.fin === false ? 0 : 0x80) | ((opts.rsv ?? 0) << 4) | opcode;
  head[1] = (masked ? 0x80 : 0) | (len < 126 ? len : len < 65536 ? 126 : 127);
  if (lenBytes === 2) head.writeUInt16BE(len, 2);
  if (lenBytes === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (!masked) return Buffer.concat([head, data]);
  const mask = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  mask.copy(head, 2 + lenBytes);
  const body = Buffer.from(data);
  for (let i = 0; i < body.length; i++) body[i]! ^= mask[i & 3]!;
  return Buffer.concat([head, body]);
}

const text = (value: unknown, opts?: Parameters<typeof frame>[2]) => frame(TEXT, typeof value === 'string' ? value : JSON.stringify(value), opts);
const socketOf = (c: TestClient): Duplex => (c.ws as unknown as { _socket: Duplex })._socket;
/** Writes `bytes` as they are onto the client's socket: the broker reads them as the client had framed them. */
const raw = (c: TestClient, ...bytes: Buffer[]) => socketOf(c).write(Buffer.concat(bytes));
const connect = () => TestClient.connect(broker.url);
const acks = (c: TestClient, ids: string[]) => Promise.all(ids.map((id) => c.next((f: Frame) => f.id === id)));

describe('WebSocket inbound frames', () => {
  it('many frames in one TCP write are all served, in order, each with its ack and delivery', async () => {
    const sub = await connect();
    expect(await sub.request({ op: 'sub', topic: 'fast/#' })).toMatchObject({ op: 'ack' });
    const pub = await connect();
    const ids = Array.from({ length: 50 }, (_, i) => `p${i}`);
    raw(pub, ...ids.map((id, i) => text({ op: 'pub', topic: `fast/${i % 3}`, data: { i }, id })));
    const answers = await acks(pub, ids);
    expect(answers.every((a) => a.op === 'ack')).toBe(true);
    // Acks in the order sent: each one's seq per topic counts up.
    const got = await Promise.all(ids.map(() => sub.next((f) => f.op === 'msg')));
    expect(got.map((m) => m.data.i)).toEqual(ids.map((_, i) => i));
    expect(pub.all.filter((f) => f.op === 'ack').map((f) => f.id)).toEqual(ids);
    pub.ws.close();
    sub.ws.close();
  });

  it('frames cut anywhere across writes (header, mask, 16-bit length, payload) are served as one', async () => {
    const sub = await connect();
    expect(await sub.request({ op: 'sub', topic: 'cut' })).toMatchObject({ op: 'ack' });
    const pub = await connect();
    const long = 'y'.repeat(300); // a 16-bit payload length
    const bytes = Buffer.concat([text({ op: 'pub', topic: 'cut', data: 'a', id: 'c1' }), text({ op: 'pub', topic: 'cut', data: long, id: 'c2' }), text({ op: 'pub', topic: 'cut', data: 'b', id: 'c3' })]);
    // Every cut point, one byte at a time for the first frames' heads, then in uneven pieces.
    const cuts = [1, 2, 3, 5, 6, 7, 40, 41, 42, 44, 47, 200, bytes.length - 3, bytes.length - 1];
    let from = 0;
    for (const cut of cuts) {
      raw(pub, bytes.subarray(from, cut));
      from = cut;
      // Each piece reaches the broker on its own (the write is flushed before the next).
      await new Promise<void>((r) => socketOf(pub).write(Buffer.alloc(0), () => r()));
    }
    raw(pub, bytes.subarray(from));
    expect((await acks(pub, ['c1', 'c2', 'c3'])).map((a) => a.op)).toEqual(['ack', 'ack', 'ack']);
    const got = [await sub.next((f) => f.op === 'msg'), await sub.next((f) => f.op === 'msg'), await sub.next((f) => f.op === 'msg')];
    expect(got.map((m) => m.data)).toEqual(['a', long, 'b']);
    // And afterwards, frames are read as before.
    expect(await pub.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    pub.ws.close();
    sub.ws.close();
  });

  it('non-ASCII UTF-8 (2-, 3- and 4-byte characters) arrives intact', async () => {
    const sub = await connect();
    expect(await sub.request({ op: 'sub', topic: 'utf8/é' })).toMatchObject({ op: 'ack' });
    const pub = await connect();
    const data = 'héllo — 世界 😀 ✓';
    raw(pub, text({ op: 'pub', topic: 'utf8/é', data, id: 'u1' }), text({ op: 'pub', topic: 'utf8/é', data: 'plain', id: 'u2' }));
    await acks(pub, ['u1', 'u2']);
    expect((await sub.next((f) => f.op === 'msg')).data).toBe(data);
    expect((await sub.next((f) => f.op === 'msg')).data).toBe('plain');
    pub.ws.close();
    sub.ws.close();
  });

  it('invalid UTF-8 closes with 1007 after the valid frames before it were served, and nothing after it is', async () => {
    const sub = await connect();
    expect(await sub.request({ op: 'sub', topic: 'bad8' })).toMatchObject({ op: 'ack' });
    const c = await connect();
    const invalid = Buffer.concat([Buffer.from('{"op":"pub","topic":"bad8","data":"'), Buffer.from([0xc3, 0x28]), Buffer.from('","id":"x"}')]);
    raw(c, text({ op: 'pub', topic: 'bad8', data: 'before', id: 'b1' }), frame(TEXT, invalid), text({ op: 'pub', topic: 'bad8', data: 'after', id: 'b2' }));
    expect((await c.closed).code).toBe(1007);
    // (Its ack was queued, but the close came in the same turn: the subscriber is the witness.)
    expect((await sub.next((f) => f.op === 'msg')).data).toBe('before');
    expect(await sub.quiet((f) => f.op === 'msg')).toBe(true);
    sub.ws.close();
  });

  it('invalid UTF-8 within otherwise ASCII text (a lone continuation byte, a truncated sequence) closes with 1007', async () => {
    for (const bad of [Buffer.from([0x80]), Buffer.from([0xe2, 0x82]), Buffer.from([0xf0, 0x9f, 0x98])]) {
      const c = await connect();
      raw(c, frame(TEXT, Buffer.concat([Buffer.from('{"op":"ping","id":"'), bad, Buffer.from('"}')])));
      expect((await c.closed).code).toBe(1007);
    }
  });

  it('a frame over --max-payload closes with 1009, with valid frames ahead of it in the same write served', async () => {
    const sub = await connect();
    expect(await sub.request({ op: 'sub', topic: 'big' })).toMatchObject({ op: 'ack' });
    const c = await connect();
    raw(c, text({ op: 'pub', topic: 'big', data: 'small' }), text({ op: 'pub', topic: 'big', data: 'x'.repeat(3000) }));
    expect((await c.closed).code).toBe(1009);
    expect((await sub.next((f) => f.op === 'msg')).data).toBe('small');
    expect(await sub.quiet((f) => f.op === 'msg')).toBe(true);
    sub.ws.close();
  });

  it('an unmasked client frame and a frame with RSV bits close with 1002', async () => {
    const a = await connect();
    raw(a, text({ op: 'ping', id: 'm' }, { masked: false }));
    expect((await a.closed).code).toBe(1002);
    expect(a.all.some((f) => f.id === 'm')).toBe(false);
    const b = await connect();
    raw(b, text({ op: 'ping', id: 'r' }, { rsv: 2 }));
    expect((await b.closed).code).toBe(1002);
    expect(b.all.some((f) => f.id === 'r')).toBe(false);
  });

  it('a ping between text frames in one write is ponged, and the frames around it are served in order', async () => {
    const c = await connect();
    const pong = new Promise<string>((r) => c.ws.once('pong', (d) => r(d.toString())));
    raw(c, text({ op: 'ping', id: 'k1' }), frame(PING, 'hb'), text({ op: 'ping', id: 'k2' }));
    expect(await pong).toBe('hb');
    await acks(c, ['k1', 'k2']);
    expect(c.all.filter((f) => f.op === 'pong').map((f) => f.id)).toEqual(['k1', 'k2']);
    c.ws.close();
  });

  it('a fragmented message is reassembled; a text frame inside it is a protocol error (1002)', async () => {
    const c = await connect();
    const json = JSON.stringify({ op: 'ping', id: 'frag' });
    raw(c, frame(TEXT, json.slice(0, 5), { fin: false }), frame(CONTINUATION, json.slice(5, 12), { fin: false }), frame(CONTINUATION, json.slice(12)), text({ op: 'ping', id: 'after' }));
    await acks(c, ['frag', 'after']);
    raw(c, frame(TEXT, json.slice(0, 5), { fin: false }), text({ op: 'ping', id: 'inside' }));
    expect((await c.closed).code).toBe(1002);
    expect(c.all.some((f) => f.id === 'inside')).toBe(false);
  });

  it('frames after a close frame in the same write are not served', async () => {
    const sub = await connect();
    expect(await sub.request({ op: 'sub', topic: 'bye' })).toMatchObject({ op: 'ack' });
    const c = await connect();
    const close = Buffer.alloc(2);
    close.writeUInt16BE(1000);
    raw(c, text({ op: 'pub', topic: 'bye', data: 'last' }), frame(CLOSE, close), text({ op: 'pub', topic: 'bye', data: 'ghost' }));
    expect((await c.closed).code).toBe(1000);
    expect((await sub.next((f) => f.op === 'msg')).data).toBe('last');
    expect(await sub.quiet((f) => f.op === 'msg')).toBe(true);
    sub.ws.close();
  });

  it('a binary frame between text frames is bad_frame, and the connection stays open', async () => {
    const c = await connect();
    raw(c, text({ op: 'ping', id: 'x1' }), frame(BINARY, Buffer.from([1, 2, 3])), text({ op: 'ping', id: 'x2' }));
    await acks(c, ['x1', 'x2']);
    expect(c.all.some((f) => f.op === 'error' && f.code === 'bad_frame')).toBe(true);
    c.ws.close();
  });
});

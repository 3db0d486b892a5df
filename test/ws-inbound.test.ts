// The /ws endpoint's own RFC 6455 server side (src/transports/ws/transport.ts) against frames as a client may put
// them on the wire: raw frames are written straight onto a real client's socket (the test's own ws client's, its
// only use of that client's insides) or onto a bare TCP socket that made the handshake itself, so one TCP write can
// hold many frames, a frame can be cut anywhere, and frames can be what no well-behaved client sends; the answers
// must be the protocol's (the handshake's statuses, acks in order, 1002, 1007, 1009, pongs, bad_frame, the close
// handshake both ways).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { connect as tcpConnect, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient, type Frame } from './helpers/client.js';
import { until } from './helpers/waits.js';

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

/**
 * A client frame: masked (unless `masked: false`), FIN set unless `fin: false`, `rsv` bits as given, the length in
 * 64 bits when `long` (a non-minimal length a server must accept as well), or `claim` put in the header as the length.
 */
function frame(opcode: number, payload: Buffer | string, opts: { fin?: boolean; masked?: boolean; rsv?: number; long?: boolean; claim?: bigint; mask?: Buffer } = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const masked = opts.masked !== false;
  const len = data.length;
  const lenBytes = opts.long || opts.claim !== undefined ? 8 : len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lenBytes + (masked ? 4 : 0));
  head[0] = (opts.fin === false ? 0 : 0x80) | ((opts.rsv ?? 0) << 4) | opcode;
  head[1] = (masked ? 0x80 : 0) | (lenBytes === 8 ? 127 : lenBytes === 2 ? 126 : len);
  if (lenBytes === 2) head.writeUInt16BE(len, 2);
  if (lenBytes === 8) head.writeBigUInt64BE(opts.claim ?? BigInt(len), 2);
  if (!masked) return Buffer.concat([head, data]);
  const mask = opts.mask ?? Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  mask.copy(head, 2 + lenBytes);
  const body = Buffer.from(data);
  for (let i = 0; i < body.length; i++) body[i]! ^= mask[i & 3]!;
  return Buffer.concat([head, body]);
}

const text = (value: unknown, opts?: Parameters<typeof frame>[2]) => frame(TEXT, typeof value === 'string' ? value : JSON.stringify(value), opts);
/** Writes `bytes` as they are onto the client's socket: the broker reads them as the client had framed them. */
const raw = (c: TestClient, ...bytes: Buffer[]) => c.socket.write(Buffer.concat(bytes));
const connect = (query = '') => TestClient.connect(`${broker.url}${query}`);
const acks = (c: TestClient, ids: string[]) => Promise.all(ids.map((id) => c.next((f: Frame) => f.id === id)));
/** A subscriber of `topic` (its sub acked) and a publisher beside it. */
async function subscriberAndPublisher(topic: string): Promise<{ sub: TestClient; pub: TestClient }> {
  const sub = await connect();
  expect(await sub.request({ op: 'sub', topic })).toMatchObject({ op: 'ack' });
  return { sub, pub: await connect() };
}
/** Resolves once what was written on `c`'s socket so far has left it: the next write reaches the broker apart. */
const flushed = (c: TestClient) => new Promise<void>((r) => c.socket.write(Buffer.alloc(0), () => r()));
/** Writes `bytes` on `c`'s socket in pieces that end at `cuts` (ascending), each flushed before the next. */
async function writeCut(c: TestClient, bytes: Buffer, cuts: number[]): Promise<void> {
  let from = 0;
  for (const cut of cuts) {
    raw(c, bytes.subarray(from, cut));
    from = cut;
    await flushed(c);
  }
  raw(c, bytes.subarray(from));
}

describe('WebSocket inbound frames', () => {
  it('many frames in one TCP write are all served, in order, each with its ack and delivery', async () => {
    const { sub, pub } = await subscriberAndPublisher('fast/#');
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
    const { sub, pub } = await subscriberAndPublisher('cut');
    const long = 'y'.repeat(300); // a 16-bit payload length
    const bytes = Buffer.concat([text({ op: 'pub', topic: 'cut', data: 'a', id: 'c1' }), text({ op: 'pub', topic: 'cut', data: long, id: 'c2' }), text({ op: 'pub', topic: 'cut', data: 'b', id: 'c3' })]);
    // Every cut point, one byte at a time for the first frames' heads, then in uneven pieces.
    const cuts = [1, 2, 3, 5, 6, 7, 40, 41, 42, 44, 47, 200, bytes.length - 3, bytes.length - 1];
    // Each piece reaches the broker on its own (the write is flushed before the next).
    await writeCut(pub, bytes, cuts);
    expect((await acks(pub, ['c1', 'c2', 'c3'])).map((a) => a.op)).toEqual(['ack', 'ack', 'ack']);
    const got = [await sub.next((f) => f.op === 'msg'), await sub.next((f) => f.op === 'msg'), await sub.next((f) => f.op === 'msg')];
    expect(got.map((m) => m.data)).toEqual(['a', long, 'b']);
    // And afterwards, frames are read as before.
    expect(await pub.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    pub.ws.close();
    sub.ws.close();
  });

  it('non-ASCII UTF-8 (2-, 3- and 4-byte characters) arrives intact', async () => {
    const { sub, pub } = await subscriberAndPublisher('utf8/é');
    const data = 'héllo — 世界 😀 ✓';
    raw(pub, text({ op: 'pub', topic: 'utf8/é', data, id: 'u1' }), text({ op: 'pub', topic: 'utf8/é', data: 'plain', id: 'u2' }));
    await acks(pub, ['u1', 'u2']);
    expect((await sub.next((f) => f.op === 'msg')).data).toBe(data);
    expect((await sub.next((f) => f.op === 'msg')).data).toBe('plain');
    pub.ws.close();
    sub.ws.close();
  });

  it('invalid UTF-8 closes with 1007 after the valid frames before it were served, and nothing after it is', async () => {
    const { sub, pub: c } = await subscriberAndPublisher('bad8');
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
    const { sub, pub: c } = await subscriberAndPublisher('big');
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

  it('a frame a byte at a time and a message in one-byte fragments (non-ASCII, over 256 bytes) arrive whole', async () => {
    // The incomplete frame and the open message are each kept in one buffer that grows as bytes come (not a Buffer
    // per socket chunk or per fragment), so these pass through every growth step of it.
    const { sub, pub } = await subscriberAndPublisher('slow/bytes');
    const data = 'é€😀'.repeat(40) + 'x'.repeat(300);
    const bytes = text({ op: 'pub', topic: 'slow/bytes', data, id: 'b1' });
    const cuts: number[] = [];
    for (let i = 1; i < bytes.length; i += 1 + Math.floor(i / 200)) cuts.push(i);
    await writeCut(pub, bytes, cuts);
    expect(await pub.next((f) => f.id === 'b1')).toMatchObject({ op: 'ack' });
    expect((await sub.next((f) => f.op === 'msg')).data).toBe(data);
    const json = Buffer.from(JSON.stringify({ op: 'pub', topic: 'slow/bytes', data, id: 'f1' }));
    const pieces = [frame(TEXT, json.subarray(0, 1), { fin: false })];
    for (let i = 1; i < json.length - 1; i++) pieces.push(frame(CONTINUATION, json.subarray(i, i + 1), { fin: false }));
    pieces.push(frame(CONTINUATION, json.subarray(json.length - 1)));
    raw(pub, ...pieces);
    expect(await pub.next((f) => f.id === 'f1')).toMatchObject({ op: 'ack' });
    expect((await sub.next((f) => f.op === 'msg' && f.seq === 2)).data).toBe(data);
    pub.ws.close();
    sub.ws.close();
  });

  it('frames after a close frame in the same write are not served', async () => {
    const { sub, pub: c } = await subscriberAndPublisher('bye');
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

/** An upgrade request for /ws with these headers (a valid one without `overrides`), and `extra` bytes after it. */
function upgradeRequest(overrides: Record<string, string | undefined> = {}, method = 'GET'): string {
  const headers: Record<string, string | undefined> = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
    ...overrides,
  };
  let text = `${method} /ws HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) text += `${name}: ${value}\r\n`;
  return `${text}\r\n`;
}

/** A bare TCP client of the broker: what it received (HTTP head, then the server's frames parsed) and its end. */
class RawClient {
  bytes = Buffer.alloc(0);
  ended = false;
  readonly gone: Promise<void>;
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => (this.bytes = Buffer.concat([this.bytes, d])));
    socket.on('error', () => {});
    this.gone = new Promise((r) => socket.once('close', () => r()));
    socket.on('end', () => (this.ended = true));
  }

  static async open(first: string | Buffer, b: TestBroker = broker): Promise<RawClient> {
    const socket = tcpConnect(b.port, '127.0.0.1');
    await new Promise<void>((r, j) => socket.once('connect', () => r()).once('error', j));
    const c = new RawClient(socket);
    socket.write(first);
    return c;
  }

  /** The HTTP response head (status line and headers), once it is complete. */
  async head(): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    await until(() => this.bytes.includes('\r\n\r\n') || this.ended, 'an HTTP response');
    const end = this.bytes.indexOf('\r\n\r\n');
    const lines = this.bytes.subarray(0, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
    return { status: Number(lines[0]!.split(' ')[1]), headers, body: this.bytes.subarray(end + 4) };
  }

  /** The server frames after the HTTP head: opcode and payload (server frames are unmasked, lengths < 2^32 here). */
  frames(): { op: number; payload: Buffer }[] {
    let at = this.bytes.indexOf('\r\n\r\n') + 4;
    const out: { op: number; payload: Buffer }[] = [];
    while (at + 2 <= this.bytes.length) {
      let len = this.bytes[at + 1]! & 0x7f;
      let p = at + 2;
      if (len === 126) [len, p] = [this.bytes.readUInt16BE(at + 2), at + 4];
      else if (len === 127) [len, p] = [this.bytes.readUInt32BE(at + 6), at + 10];
      if (p + len > this.bytes.length) break;
      out.push({ op: this.bytes[at]! & 0x0f, payload: this.bytes.subarray(p, p + len) });
      at = p + len;
    }
    return out;
  }

  async frame(pred: (f: { op: number; payload: Buffer }) => boolean, what: string): Promise<{ op: number; payload: Buffer }> {
    await until(() => this.frames().some(pred), what);
    return this.frames().find(pred)!;
  }
}

/** A raw client of `on` upgraded and greeted, that sends `quit`: returns it and the server's close frame. */
async function quitRaw(on: TestBroker): Promise<[RawClient, { op: number; payload: Buffer }]> {
  const c = await RawClient.open(upgradeRequest(), on);
  expect((await c.head()).status).toBe(101);
  await c.frame((f) => f.op === TEXT && JSON.parse(f.payload.toString()).op === 'hello', 'hello');
  c.socket.write(text({ op: 'quit' }));
  return [c, await c.frame((f) => f.op === CLOSE, 'the close frame')];
}

const closePayload = (code: number, reason = '') => {
  const out = Buffer.alloc(2 + Buffer.byteLength(reason));
  out.writeUInt16BE(code);
  out.write(reason, 2);
  return out;
};

describe('WebSocket opening handshake', () => {
  it('an HTTP/1.0 upgrade request is refused 400 (RFC 6455 4.2.1: HTTP/1.1 or later; it was answered 101)', async () => {
    const c = await RawClient.open(upgradeRequest().replace('HTTP/1.1', 'HTTP/1.0'));
    expect((await c.head()).status).toBe(400);
    c.socket.destroy();
  });

  it('answers a valid upgrade with 101 and the RFC 6455 accept value; bytes sent with the request are the first frames', async () => {
    const c = await RawClient.open(Buffer.concat([Buffer.from(upgradeRequest()), text({ op: 'ping', id: 'in-head' })]));
    const { status, headers } = await c.head();
    expect(status).toBe(101);
    // RFC 6455 §1.3's own example key and answer.
    expect(headers['sec-websocket-accept']).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    expect(headers['sec-websocket-accept']).toBe(createHash('sha1').update('dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64'));
    expect(headers.upgrade?.toLowerCase()).toBe('websocket');
    expect(headers['sec-websocket-protocol']).toBeUndefined();
    expect(headers['sec-websocket-extensions']).toBeUndefined();
    const pong = await c.frame((f) => f.op === TEXT && JSON.parse(f.payload.toString()).id === 'in-head', 'the pong of the frame sent with the request');
    expect(JSON.parse(pong.payload.toString())).toEqual({ op: 'pong', id: 'in-head' });
    c.socket.destroy();
  });

  it('offers of a subprotocol and of permessage-deflate are not taken up', async () => {
    const c = await RawClient.open(upgradeRequest({ 'Sec-WebSocket-Protocol': 'chat', 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' }));
    const { status, headers } = await c.head();
    expect(status).toBe(101);
    expect(headers['sec-websocket-protocol']).toBeUndefined();
    expect(headers['sec-websocket-extensions']).toBeUndefined();
    c.socket.destroy();
  });

  it('refuses a missing or malformed key with 400, another version with 426 naming 13, and the wrong method with 405', async () => {
    for (const key of [undefined, 'short', 'dGhlIHNhbXBsZSBub25jZQ', 'dGhlIHNhbXBsZSBub25jZQ=', 'dGhlIHNhbXBsZSBub25jZQ===', 'dGhlIHNhbXBsZSBub25jZ!==']) {
      const c = await RawClient.open(upgradeRequest({ 'Sec-WebSocket-Key': key }));
      expect((await c.head()).status, `key ${key}`).toBe(400);
      await c.gone;
    }
    for (const version of [undefined, '8', '12', '14', 'x']) {
      const c = await RawClient.open(upgradeRequest({ 'Sec-WebSocket-Version': version }));
      const { status, headers } = await c.head();
      expect(status, `version ${version}`).toBe(426);
      expect(headers['sec-websocket-version']).toBe('13');
      await c.gone;
    }
    const wrongUpgrade = await RawClient.open(upgradeRequest({ Upgrade: 'h2c' }));
    expect((await wrongUpgrade.head()).status).toBe(400);
    const post = await RawClient.open(upgradeRequest({}, 'POST'));
    expect((await post.head()).status).toBe(405);
  });
});

describe('WebSocket frame lengths and limits', () => {
  it('a 64-bit length with its most significant bit set is malformed: 1002, not 1009 (RFC 6455 5.2; found by a review helper)', async () => {
    const c = await connect();
    raw(c, frame(TEXT, 'x', { claim: 2n ** 63n + 1n }));
    expect((await c.closed).code).toBe(1002);
  });

  it('a 64-bit length is read (here a non-minimal one, for a short frame), also cut inside its length bytes', async () => {
    const c = await connect();
    const bytes = Buffer.concat([text({ op: 'ping', id: 'l64' }, { long: true }), text({ op: 'ping', id: 'l64b' }, { long: true })]);
    raw(c, bytes.subarray(0, 5));
    await new Promise<void>((r) => c.socket.write(Buffer.alloc(0), () => r()));
    raw(c, bytes.subarray(5));
    expect((await acks(c, ['l64', 'l64b'])).map((a) => a.op)).toEqual(['pong', 'pong']);
    c.ws.close();
  });

  it('a 64-bit length over --max-payload closes with 1009 at once, before its payload; one over 2^53 - 1 too', async () => {
    for (const claim of [2n ** 32n, 2n ** 62n]) {
      const c = await connect();
      raw(c, frame(TEXT, 'x', { claim }));
      expect((await c.closed).code).toBe(1009);
    }
  });

  it('a fragmented message over --max-payload in total closes with 1009, though each fragment is under it', async () => {
    const { sub, pub: c } = await subscriberAndPublisher('fragbig');
    const json = JSON.stringify({ op: 'pub', topic: 'fragbig', data: 'z'.repeat(3000) });
    raw(c, frame(TEXT, json.slice(0, 1000), { fin: false }), frame(CONTINUATION, json.slice(1000, 2000), { fin: false }), frame(CONTINUATION, json.slice(2000)));
    expect((await c.closed).code).toBe(1009);
    expect(await sub.quiet((f) => f.op === 'msg')).toBe(true);
    sub.ws.close();
  });

  it('a continuation without a message started, an unknown opcode, a fragmented or long control frame: 1002', async () => {
    const cases = [
      frame(CONTINUATION, 'x'),
      frame(0x3, 'x'),
      frame(0xb, 'x'),
      frame(PING, 'x', { fin: false }),
      frame(PING, 'p'.repeat(126)),
    ];
    for (const bytes of cases) {
      const c = await connect();
      raw(c, bytes);
      expect((await c.closed).code).toBe(1002);
    }
  });

  it('a fragmented message with pings between its fragments is served whole, the pings ponged', async () => {
    const c = await connect();
    const pongs: string[] = [];
    c.ws.on('pong', (d) => pongs.push(d.toString()));
    const json = JSON.stringify({ op: 'ping', id: 'é-frag' });
    const bytes = Buffer.from(json);
    // Cut inside the two-byte é: the UTF-8 check is of the whole message.
    raw(c, frame(TEXT, bytes.subarray(0, 21), { fin: false }), frame(PING, 'a'), frame(CONTINUATION, bytes.subarray(21, 22), { fin: false }), frame(PING, 'b'), frame(CONTINUATION, bytes.subarray(22)));
    await acks(c, ['é-frag']);
    await until(() => pongs.length === 2, 'two pongs');
    expect(pongs).toEqual(['a', 'b']);
    c.ws.close();
  });
});

describe('WebSocket close handshake', () => {
  it('a client close frame is answered with its code; no code is answered with none (1005 to the client)', async () => {
    const a = await connect();
    a.ws.close(4001, 'done here');
    expect(await a.closed).toEqual({ code: 4001, reason: '' });
    const b = await connect();
    raw(b, frame(CLOSE, Buffer.alloc(0)));
    expect((await b.closed).code).toBe(1005);
  });

  it('close codes are checked as ws checks them: reserved, unassigned and out-of-range codes and a 1-byte body are 1002', async () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
      const c = await connect();
      raw(c, frame(CLOSE, closePayload(code)));
      expect((await c.closed).code, `close code ${code}`).toBe(1002);
    }
    const one = await connect();
    raw(one, frame(CLOSE, Buffer.from([0x03])));
    expect((await one.closed).code).toBe(1002);
    for (const code of [1000, 1001, 1011, 1014, 3000, 4999]) {
      const c = await connect();
      raw(c, frame(CLOSE, closePayload(code, 'ok')));
      expect((await c.closed).code, `close code ${code}`).toBe(code);
    }
  });

  it('a close reason that is not UTF-8 closes with 1007', async () => {
    const c = await connect();
    raw(c, frame(CLOSE, Buffer.concat([closePayload(1000), Buffer.from([0xc3, 0x28])])));
    expect((await c.closed).code).toBe(1007);
  });

  it('a server close (quit) sends the close frame, reads on until the peer\'s (in one write with a frame), then ends', async () => {
    // A bound far beyond the wait below: the socket ends because the close frame was read, not because time ran out.
    const patient = await startTestBroker({ closeTimeoutMs: 120_000 });
    try {
      const [c, close] = await quitRaw(patient);
      expect(close.payload.readUInt16BE(0)).toBe(1000);
      c.socket.write(Buffer.concat([text({ op: 'ping', id: 'late' }), frame(CLOSE, closePayload(1000))]));
      await until(() => c.ended, 'the server to end the socket');
      // Nothing after its close frame: no second close frame, no frame at all.
      expect(c.frames().filter((f) => f.op === CLOSE)).toHaveLength(1);
      expect(c.frames().at(-1)!.op).toBe(CLOSE);
      c.socket.end();
      await c.gone;
    } finally {
      await patient.close();
    }
  });

  it('a peer that never answers the server\'s close frame is cut after --close-timeout-ms', async () => {
    const quick = await startTestBroker({ closeTimeoutMs: 300 });
    try {
      const [c] = await quitRaw(quick);
      const sent = Date.now();
      await c.gone;
      // It waited for the peer's close frame (the bound, not at once), then cut the socket.
      expect(Date.now() - sent).toBeGreaterThanOrEqual(250);
    } finally {
      await quick.close();
    }
  });

  it('a client that vanishes (socket destroyed, no close frame) leaves once, with 1006', async () => {
    const watcher = await connect();
    await watcher.request({ op: 'sub', topic: 'vanish', presence: true });
    await watcher.next((f) => f.op === 'event' && f.event === 'join');
    const c = await connect('?name=vanisher&topics=vanish');
    expect(await watcher.next((f) => f.op === 'event' && f.event === 'join')).toMatchObject({ client: { name: 'vanisher' } });
    c.socket.destroy();
    expect(await watcher.next((f) => f.op === 'event')).toMatchObject({ event: 'leave', client: { name: 'vanisher' } });
    expect(await watcher.quiet((f) => f.op === 'event' && f.event === 'leave')).toBe(true);
    expect((await watcher.request({ op: 'who' })).clients.some((x: { name: string }) => x.name === 'vanisher')).toBe(false);
    watcher.ws.close();
  });
});

describe('WebSocket frames, any way a client may cut and interleave them (fast-check)', () => {
  /** One message as the client frames it: whole or in fragments, pings between fragments, any mask, any length form. */
  const message = fc.record({
    data: fc.string({ unit: 'binary', maxLength: 300, size: 'max' }),
    fragments: fc.integer({ min: 1, max: 4 }),
    pingBetween: fc.boolean(),
    long: fc.boolean(),
    mask: fc.uint8Array({ minLength: 4, maxLength: 4 }),
  });

  it('every message is acked and delivered once, in order, whatever the frames\' cuts across writes', { timeout: 60_000 }, async () => {
    const { sub } = await subscriberAndPublisher('prop/#');
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 2000 }), { maxLength: 8 }), async (messages, cutsAt) => {
          const topic = `prop/${++run}`;
          const pub = await connect();
          try {
            const ids = messages.map((_, i) => `m${i}`);
            const frames: Buffer[] = [];
            messages.forEach((m, i) => {
              const json = Buffer.from(JSON.stringify({ op: 'pub', topic, data: m.data, id: ids[i] }));
              const opts = { long: m.long, mask: Buffer.from(m.mask) };
              const size = Math.ceil(json.length / m.fragments);
              for (let at = 0, k = 0; at < json.length; at += size, k++) {
                const last = at + size >= json.length;
                frames.push(frame(k === 0 ? TEXT : CONTINUATION, json.subarray(at, at + size), { ...opts, fin: last }));
                // A control frame's length is always the 7-bit form.
                if (!last && m.pingBetween) frames.push(frame(PING, 'between', { mask: opts.mask }));
              }
            });
            const bytes = Buffer.concat(frames);
            const cuts = [...new Set(cutsAt.map((c) => c % bytes.length))].filter((c) => c > 0).sort((a, b) => a - b);
            await writeCut(pub, bytes, cuts);
            // Short waits and no shrinking: a broken reader fails fast with its first counterexample.
            const answers = await Promise.all(ids.map((id) => pub.next((f: Frame) => f.id === id, 3000)));
            expect(answers.map((a) => a.op)).toEqual(ids.map(() => 'ack'));
            const got = await Promise.all(ids.map(() => sub.next((f) => f.op === 'msg' && f.topic === topic, 3000)));
            expect(got.map((f) => f.data)).toEqual(messages.map((m) => m.data));
            expect(pub.all.filter((f) => f.op === 'error')).toEqual([]);
          } finally {
            pub.ws.close();
          }
        }),
        { numRuns: 40, endOnFailure: true },
      );
      expect(run).toBe(40);
    } finally {
      sub.ws.close();
    }
  });
});

describe('WebSocket close handshake bounds (--close-timeout-ms; found by a review helper)', () => {
  let bounded: TestBroker;
  beforeAll(async () => {
    bounded = await startTestBroker({ closeTimeoutMs: 300, mailboxBytes: 256 * 1024 * 1024, mailboxSize: 1_000_000 });
  });
  afterAll(() => bounded.close());
  /** Sockets the broker's HTTP server holds open (upgraded ones too, until they close). */
  const openSockets = () => new Promise<number>((r, j) => bounded.http.getConnections((err, n) => (err ? j(err) : r(n))));

  it('a crashed connection (1011) whose peer never answers the close frame is cut: its actor is gone, the wait was its', async () => {
    const c = await RawClient.open(upgradeRequest(), bounded);
    expect((await c.head()).status).toBe(101);
    const hello = await c.frame((f) => f.op === TEXT && JSON.parse(f.payload.toString()).op === 'hello', 'hello');
    const link = bounded.hub.inspect.findClient(JSON.parse(hello.payload.toString()).client.id)!;
    link.send = () => {
      throw new Error('injected handler fault'); // as test/security/supervision.test.ts does
    };
    c.socket.write(text({ op: 'ping' }));
    const close = await c.frame((f) => f.op === CLOSE, 'the close frame');
    expect(close.payload.readUInt16BE(0)).toBe(1011);
    await c.gone; // never answered: the broker cuts the socket
  });

  it('a peer that ends its side without a close frame while not reading is cut, not held open for ever', async () => {
    const before = await openSockets();
    const c = await RawClient.open(upgradeRequest().replace('GET /ws ', 'GET /ws/halfclose '), bounded);
    expect((await c.head()).status).toBe(101);
    c.socket.pause(); // reads nothing more: the broker's writes back up
    const pub = await TestClient.connect(bounded.url);
    const data = 'y'.repeat(60_000);
    for (let i = 0; i < 120; i++) await pub.request({ op: 'pub', topic: 'halfclose', data }); // ~7 MB: past what the kernel takes
    pub.close();
    await until(async () => (await openSockets()) === before + 1, 'only the paused one left');
    c.socket.end(); // TCP FIN, no close frame
    await until(async () => (await openSockets()) === before, 'the broker cut the half-closed socket', 5000);
    c.socket.destroy();
  });
});

// One WebSocket connection's RFC 6455 server side, after the handshake (src/transports/ws/transport.ts): the Wire the
// mailbox writes to (pre-framed bytes straight to the socket), the reader of the client's frames (parsed from the
// socket's chunks, unmasked in place, UTF-8 checked), control frames and the close handshake both ways. All of a
// connection's state is its WsWire; the socket's listeners are shared by every connection.
import type { Duplex } from 'node:stream';
import { isUtf8 } from 'node:buffer';
import type { FrameReader } from '../../actors/reader.js';
import type { Wire } from '../../actors/mailbox.js';
import type { Outgoing } from '../../protocol/outgoing.js';
import { wsFrame, wsTextFrame, wsTextFrameSize, writeWsTextFrame } from './frame.js';

/** What every connection of one transport reads alike (one object per transport, not copied into each connection). */
export interface WsShared {
  readonly maxPayload: number;
  readonly closeTimeoutMs: number;
}

// A connection's state: OPEN until a close frame is sent or received, CLOSING until the socket is gone.
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/**
 * One client's RFC 6455 server side, on its socket: the Wire the mailbox writes to (frames already built, straight to
 * the socket) and the reader of the client's frames (parsed from the socket's chunks, unmasked in place, UTF-8
 * checked, handed to the FrameReader). All of a connection's state is this object; the socket's listeners are shared.
 */
export class WsWire implements Wire {
  // Constants of every WebSocket wire, on the prototype (getters), not copied into each connection's object.
  get transport(): 'ws' {
    return 'ws';
  }
  get canPing(): boolean {
    return true;
  }
  get sharedEncoding(): boolean {
    return true;
  }

  /** Set right after openConnection (the reader needs the wire first). */
  reader: FrameReader | undefined = undefined;
  state = OPEN;
  private closeSent = false;
  /** After a close frame or a protocol error: nothing more the client sends is read. */
  private ignoring = false;
  /** SOCKET_CLOSED told (once). */
  private reported = false;
  /** An incomplete frame's bytes (only while one is incomplete, in one buffer) and how many the next step needs. */
  private tail: Buffer | undefined = undefined;
  private tailBytes = 0;
  private need = 0;
  /** A fragmented message's opcode (0: none open), its payload so far (in one buffer, once it has any) and size. */
  private frag: Buffer | undefined = undefined;
  private fragOp = 0;
  private fragBytes = 0;
  /** Destroys the socket if the peer does not end it after our end (only while closing). */
  private timer: NodeJS.Timeout | undefined = undefined;
  /** The latest ping's payload, while its pong waits for the socket to drain (undefined: none waits). */
  private pongDue: Buffer | undefined = undefined;

  constructor(
    readonly socket: Duplex,
    private readonly shared: WsShared,
  ) {}

  encode(out: Outgoing): Buffer {
    return out.bytesFor(wsTextFrame);
  }

  encodedSize(out: Outgoing): number {
    return wsTextFrameSize(out);
  }

  encodeInto(out: Outgoing, buf: Buffer, at: number): number {
    return writeWsTextFrame(out, buf, at);
  }

  write(chunk: Buffer): boolean {
    if (this.state !== OPEN) return true;
    return this.socket.write(chunk);
  }

  onDrain(listener: () => void): void {
    this.socket.once('drain', listener);
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  ping(): void {
    if (this.state === OPEN) this.socket.write(PING);
  }

  /**
   * Answers a ping. While the socket is congested only the latest ping gets a pong, once it drains (RFC 6455 5.5.3
   * allows answering the most recent ping alone): pongs bypass the mailbox and its byte bound, so a client that pings
   * and never reads would otherwise grow this socket's buffer without end.
   */
  private pong(payload: Buffer): void {
    if (!this.socket.writableNeedDrain) return void this.socket.write(wsFrame(0x8a, payload.length === 0 ? undefined : payload));
    const waiting = this.pongDue !== undefined;
    this.pongDue = Buffer.from(payload); // a copy: at most 125 bytes, not the read chunk it is a view of
    if (waiting) return;
    this.socket.once('drain', () => {
      const due = this.pongDue!;
      this.pongDue = undefined;
      if (this.state === OPEN) this.socket.write(wsFrame(0x8a, due.length === 0 ? undefined : due));
    });
  }

  /**
   * Sends our close frame; the peer's ends the socket. The wait is bounded here too (--close-timeout-ms), not only by
   * the connection actor: after a crash (1011) there is no actor left to terminate the socket.
   */
  close(code: number, reason: string): void {
    // Not twice, and not once the client's close frame or its end came (ours was sent, or its side is gone).
    if (this.state !== OPEN) return;
    this.sendClose(code, reason);
  }

  terminate(): void {
    this.state = CLOSED;
    this.socket.destroy();
  }

  private sendClose(code: number, reason: string): void {
    this.closeSent = true;
    this.state = CLOSING;
    this.socket.write(closeFrame(code, reason));
    this.armCut();
  }

  /** Destroys the socket after --close-timeout-ms unless it closes first (closed() clears it). */
  private armCut(): void {
    if (this.timer === undefined && !this.socket.destroyed) {
      this.timer = setTimeout(destroySocket, this.shared.closeTimeoutMs, this.socket);
      this.timer.unref();
    }
  }

  /**
   * The peer ended its side without a close frame: ours ends too (http sockets are half-open), bounded like a close
   * handshake (a peer that stops reading would otherwise hold the socket and its slot forever), SOCKET_CLOSED told.
   */
  peerEnded(): void {
    if (this.state === OPEN) this.state = CLOSING;
    this.socket.end();
    this.armCut();
    this.report(1006, '');
  }

  /** Both sides are done (close frames, or a protocol error): end the socket, cut it if the peer never ends it. */
  private finish(): void {
    this.stopReading();
    this.socket.end();
    this.armCut();
  }

  /** The socket is gone or going: SOCKET_CLOSED to the actor once (after a forced close it has finished already). */
  report(code: number, reason: string): void {
    if (this.reported) return;
    this.reported = true;
    this.stopReading();
    const actor = this.reader!.link.actor!;
    if (actor.getSnapshot().status === 'active') actor.send({ type: 'SOCKET_CLOSED', code, reason });
  }

  /** A throw while its frames were served: the actor's crash (FAULT), and nothing more of this socket is read. */
  fault(error: unknown): void {
    this.stopReading();
    this.reader!.link.actor!.send({ type: 'FAULT', error });
  }

  /** Nothing more the client sends is read; what was held of an incomplete frame or message is let go. */
  private stopReading(): void {
    this.ignoring = true;
    this.tail = undefined;
    this.frag = undefined;
  }

  /** The socket's 'close': no timer left, nothing more to write. */
  closed(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.state = CLOSED;
    this.report(1006, '');
  }

  /** A protocol violation: the close frame with its code (as ws: no reason), the socket ended, nothing more read. */
  private fail(code: number, message: string): void {
    const reader = this.reader!;
    reader.faults?.note('info', { client: reader.link.id, err: message }, 'websocket error');
    if (!this.closeSent) this.sendClose(code, '');
    this.finish();
  }

  /** The peer's close frame: ours in answer (its code, none if it gave none), the socket ended, the actor told. */
  private peerClosed(code: number, reason: string): void {
    if (!this.closeSent) this.sendClose(code === 1005 ? 0 : code, '');
    this.finish();
    this.report(code, reason);
  }

  /** Keeps the incomplete frame from `at` (a copy: the chunk is not held) until `need` bytes of it are here. */
  private keep(buf: Buffer, at: number, need: number): void {
    this.tail = appendBytes(undefined, 0, buf, at, buf.length, need);
    this.tailBytes = buf.length - at;
    this.need = need;
  }

  /** One chunk of the socket's bytes: every complete frame in it is served; an incomplete one waits for the rest. */
  read(chunk: Buffer): void {
    if (this.ignoring) return;
    let buf = chunk;
    if (this.tail !== undefined) {
      // Copied into the one buffer, not held as the socket's chunks: a frame sent a byte at a time would otherwise
      // hold a Buffer object per byte (~100 times its size) until it is complete.
      const total = this.tailBytes + chunk.length;
      if (total < this.need) {
        this.tail = appendBytes(this.tail, this.tailBytes, chunk, 0, chunk.length, this.need);
        this.tailBytes = total;
        return;
      }
      buf = Buffer.concat([this.tail.subarray(0, this.tailBytes), chunk], total);
      this.tail = undefined;
    }
    const reader = this.reader!;
    const max = this.shared.maxPayload;
    const end = buf.length;
    let at = 0;
    while (at < end) {
      if (at + 2 > end) return this.keep(buf, at, 2);
      const b0 = buf[at]!;
      const b1 = buf[at + 1]!;
      const op = b0 & 0x0f;
      const fin = b0 >= 0x80;
      // The checks ws's receiver makes, in its order, with its codes.
      if ((b0 & 0x70) !== 0) return this.fail(1002, 'RSV bits must be clear');
      if (op >= 8) {
        if (op > 10) return this.fail(1002, `invalid opcode ${op}`);
        if (!fin) return this.fail(1002, 'FIN must be set');
        if ((b1 & 0x7f) > 125) return this.fail(1002, `invalid payload length ${b1 & 0x7f}`);
      } else if (op === 0) {
        if (this.fragOp === 0) return this.fail(1002, 'invalid opcode 0');
      } else if (op <= 2) {
        if (this.fragOp !== 0) return this.fail(1002, `invalid opcode ${op}`);
      } else return this.fail(1002, `invalid opcode ${op}`);
      if (b1 < 0x80) return this.fail(1002, 'MASK must be set');
      let len = b1 & 0x7f;
      let p = at + 2;
      if (len === 126) {
        if (at + 4 > end) return this.keep(buf, at, 4);
        len = (buf[at + 2]! << 8) | buf[at + 3]!;
        p = at + 4;
      } else if (len === 127) {
        if (at + 10 > end) return this.keep(buf, at, 10);
        const high = buf.readUInt32BE(at + 2);
        // RFC 6455 5.2: the most significant bit of a 64-bit length MUST be 0 (a malformed frame, not a large one).
        if (high >= 0x80000000) return this.fail(1002, 'invalid payload length: the most significant bit must be 0');
        if (high > 0x1fffff) return this.fail(1009, 'Unsupported WebSocket frame: payload length > 2^53 - 1');
        len = high * 2 ** 32 + buf.readUInt32BE(at + 6);
        p = at + 10;
      }
      if (op < 8 && max > 0 && this.fragBytes + len > max) return this.fail(1009, 'Max payload size exceeded');
      p += 4; // the mask
      const stop = p + len;
      if (stop > end) return this.keep(buf, at, stop - at);
      const ascii = unmask(buf, p - 4, p, stop);
      at = stop;
      if (op === 1 && fin) {
        if (!ascii && !isUtf8(buf.subarray(p, stop))) return this.fail(1007, 'invalid UTF-8 sequence');
        reader.text(buf.toString(ascii ? 'latin1' : 'utf8', p, stop), len);
      } else if (op === 2 && fin) {
        reader.binary(len);
      } else if (op < 8) {
        if (op !== 0) this.fragOp = op;
        // Into one buffer (at most maxPayload bytes), not a Buffer per fragment: a message in 1-byte fragments
        // would otherwise hold ~100 times its size.
        if (len > 0) this.frag = appendBytes(this.frag, this.fragBytes, buf, p, stop, max > 0 ? max : Infinity);
        this.fragBytes += len;
        if (fin) {
          const data = this.frag === undefined ? Buffer.alloc(0) : this.frag.subarray(0, this.fragBytes);
          const bytes = this.fragBytes;
          const kind = this.fragOp;
          this.frag = undefined;
          this.fragOp = 0;
          this.fragBytes = 0;
          if (kind === 2) reader.binary(bytes);
          else if (!isUtf8(data)) return this.fail(1007, 'invalid UTF-8 sequence');
          else reader.text(data.toString(), bytes);
        }
      } else if (op === 8) {
        if (len === 1) return this.fail(1002, 'invalid payload length 1');
        if (len === 0) return this.peerClosed(1005, '');
        const code = (buf[p]! << 8) | buf[p + 1]!;
        if (!validCloseCode(code)) return this.fail(1002, `invalid status code ${code}`);
        const reason = buf.subarray(p + 2, stop);
        if (!isUtf8(reason)) return this.fail(1007, 'invalid UTF-8 sequence');
        return this.peerClosed(code, reason.toString());
      } else if (op === 9) {
        if (this.state === OPEN) this.pong(buf.subarray(p, stop));
        reader.control();
      } else {
        // A pong is an inbound frame too: unsolicited ones (RFC 6455 allows them) spend a token like pings do.
        reader.control();
        reader.link.actor!.send({ type: 'PONG' });
      }
      // (After our own close frame the client's frames are still read: its close frame ends the handshake.)
      if (this.ignoring) return;
    }
  }
}

/**
 * `src[from, to)` appended to `into` (of which `used` bytes are taken): into itself when it has room, else into a
 * buffer twice as large (each byte is copied a bounded number of times), never larger than `cap` (≥ the total).
 */
function appendBytes(into: Buffer | undefined, used: number, src: Buffer, from: number, to: number, cap: number): Buffer {
  const total = used + (to - from);
  let out = into;
  if (out === undefined || total > out.length) {
    const grown = Buffer.allocUnsafe(Math.min(cap, Math.max(total, 2 * (out?.length ?? 0), 256)));
    if (out !== undefined) out.copy(grown, 0, 0, used);
    out = grown;
  }
  src.copy(out, used, from, to);
  return out;
}

function destroySocket(socket: Duplex): void {
  socket.destroy();
}

/** The close codes a peer may send (ws's isValidStatusCode): 1000-1014 but 1004-1006, and 3000-4999. */
function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** Our ping (no payload): the same bytes for every connection and every beat. */
const PING = wsFrame(0x89, undefined);

/** Our close frame: the code (none when 0) and the reason cut to what fits a control frame (123 bytes). */
function closeFrame(code: number, reason: string): Buffer {
  if (code === 0) return wsFrame(0x88, undefined);
  let text = Buffer.from(reason);
  if (text.length > 123) {
    let cut = 123;
    while (cut > 0 && (text[cut]! & 0xc0) === 0x80) cut--; // not inside a character
    text = text.subarray(0, cut);
  }
  const payload = Buffer.allocUnsafe(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return wsFrame(0x88, payload);
}

/** XORs chunk[from, to) with the 4-byte mask at `mask`; true when every byte is ASCII afterwards. */
function unmask(chunk: Buffer, mask: number, from: number, to: number): boolean {
  const m0 = chunk[mask]!;
  const m1 = chunk[mask + 1]!;
  const m2 = chunk[mask + 2]!;
  const m3 = chunk[mask + 3]!;
  let high = 0;
  let i = from;
  for (; i + 4 <= to; i += 4) {
    high |= chunk[i]! ^= m0;
    high |= chunk[i + 1]! ^= m1;
    high |= chunk[i + 2]! ^= m2;
    high |= chunk[i + 3]! ^= m3;
  }
  if (i < to) high |= chunk[i++]! ^= m0;
  if (i < to) high |= chunk[i++]! ^= m1;
  if (i < to) high |= chunk[i]! ^= m2;
  return high < 0x80;
}

/**
 * Each open connection's wire by its socket, for the socket listeners shared by all of them (Node calls a listener
 * with the socket as `this`). No record per connection beyond this entry and the wire.
 */
const wires = new WeakMap<Duplex, WsWire>();

function onData(this: Duplex, chunk: Buffer): void {
  const wire = wires.get(this);
  if (wire === undefined) return;
  // A throw here would escape into the socket's data handler and take the process down: make it this actor's crash.
  try {
    wire.read(chunk);
  } catch (error) {
    wire.fault(error);
  }
}

/** The peer ended its side: ours ends too (http sockets are half-open), SOCKET_CLOSED unless a close frame told it. */
function onEnd(this: Duplex): void {
  const wire = wires.get(this);
  if (wire === undefined) return;
  try {
    wire.peerEnded();
  } catch (error) {
    wire.fault(error);
  }
}

function onClose(this: Duplex): void {
  const wire = wires.get(this);
  if (wire === undefined) return;
  wires.delete(this);
  try {
    wire.closed();
  } catch (error) {
    wire.fault(error);
  }
}

/** A socket error (a reset): the socket is destroyed, which its 'close' reports. (The broker logs the error itself.) */
function onError(this: Duplex): void {
  this.destroy();
}

/** Serves `socket` as `wire`'s from now on: the listeners shared by every connection find the wire by its socket. */
export function serveSocket(socket: Duplex, wire: WsWire): void {
  wires.set(socket, wire);
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('close', onClose);
  socket.on('error', onError);
}

// Bench wire: the load generator's hand-written client side of five protocols (Switchboard WS, plain ws,
// Socket.IO/Engine.IO v4, MQTT 3.1.1, NATS). Deliveries are counted from frame headers only; payloads are
// skipped unread, except on the one latency subscriber and for the few control frames that need an answer.
import { connect, type Socket } from 'node:net';

export type Proto = 'sb' | 'ws' | 'sio' | 'mqtt' | 'nats';
export const TOPIC = 'bench';

/** A topic or filter in MQTT form (`in/3`, `in/#`) as the protocol spells it: NATS uses `.`, `*` and `>`. */
export function topicFor(proto: Proto, topic: string): string {
  if (proto !== 'nats') return topic;
  return topic.split('/').map((s) => (s === '#' ? '>' : s === '+' ? '*' : s)).join('.');
}

export interface Target {
  proto: Proto;
  host: string;
  port: number;
}

/** Microseconds on the system-wide monotonic clock, comparable across processes on this machine. */
export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** A payload of exactly `size` bytes that carries its send time as `t=<µs>;`. */
export function stampedPayload(size: number): string {
  const head = `t=${nowUs()};`;
  return head.length >= size ? head : head + 'x'.repeat(size - head.length);
}

/** The send time inside a received frame, or -1. Only the latency subscriber calls this. */
export function readStamp(buf: Buffer): number {
  const at = buf.indexOf('t=');
  if (at < 0) return -1;
  let v = 0;
  for (let i = at + 2; i < buf.length; i++) {
    const c = buf[i]!;
    if (c < 48 || c > 57) return v;
    v = v * 10 + (c - 48);
  }
  return v;
}

// ---- WebSocket client framing (RFC 6455). Client frames must be masked; a zero mask leaves bytes as they are.
export function wsClientFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const h = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(h + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(0, 2);
    out.writeUInt32BE(len, 6);
  }
  out.writeUInt32BE(0, h); // mask key 0
  payload.copy(out, h + 4);
  return out;
}

function wsPath(proto: Proto, role: 'sub' | 'pub', topic = TOPIC): string {
  if (proto === 'sb') return role === 'sub' ? `/ws/${topic.split('/').map(encodeURIComponent).join('/')}` : '/ws';
  if (proto === 'sio') return `/socket.io/?EIO=4&transport=websocket&role=${role}`;
  return role === 'sub' ? '/' : '/pub';
}

function upgradeRequest(path: string, host: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

// ---- MQTT 3.1.1 packets
function mqttLength(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}
function mqttString(s: string): Buffer {
  const b = Buffer.from(s);
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}
function mqttPacket(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first, ...mqttLength(body.length)]), body]);
}
let clientSeq = 0;
function mqttConnect(): Buffer {
  // protocol name, level 4, flags clean session, keepalive 0 (off), client id
  const id = `b${process.pid}-${++clientSeq}`;
  return mqttPacket(0x10, Buffer.concat([mqttString('MQTT'), Buffer.from([4, 0x02, 0, 0]), mqttString(id)]));
}
function mqttSubscribe(topic = TOPIC): Buffer {
  return mqttPacket(0x82, Buffer.concat([Buffer.from([0, 1]), mqttString(topic), Buffer.from([0])]));
}
export function mqttPublish(payload: Buffer, topic = TOPIC): Buffer {
  return mqttPacket(0x30, Buffer.concat([mqttString(topic), payload]));
}

// ---- Publish frames per protocol (Switchboard: no `id`, a protocol 2 notification, so no ack comes back)
export function publishFrame(proto: Proto, payload: string, topic = TOPIC): Buffer {
  switch (proto) {
    case 'sb':
      return wsClientFrame(1, Buffer.from(`{"op":"pub","topic":"${topic}","data":"${payload}"}`));
    case 'ws':
      return wsClientFrame(1, Buffer.from(payload));
    case 'sio':
      return wsClientFrame(1, Buffer.from(`42["pub","${payload}"]`));
    case 'mqtt':
      return mqttPublish(Buffer.from(payload), topic);
    case 'nats':
      return Buffer.from(`PUB ${topicFor('nats', topic)} ${Buffer.byteLength(payload)}\r\n${payload}\r\n`);
  }
}

const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

export interface ClientOptions {
  role: 'sub' | 'pub';
  /** The subscriber's filter in MQTT form (default: the bench topic). */
  topic?: string;
  /** Decode every delivery's stamp and call onLatency (one subscriber per run). */
  latency?: boolean;
  localAddress?: string;
  /** Request path of the WebSocket upgrade, instead of the one for the protocol and role. */
  path?: string;
  onReady: () => void;
  /** Called once per read that carried deliveries (not per delivery: the count is `frames`). */
  onDeliveries?: (n: number) => void;
  onLatency?: (us: number) => void;
  onClose: (err?: Error) => void;
}

/**
 * One client connection. After the handshake it counts deliveries (`frames`) by header only and answers
 * pings (WebSocket ping → pong, Engine.IO `2` → `3`, NATS PING → PONG).
 */
export class BenchClient {
  readonly socket: Socket;
  frames = 0;
  ready = false;
  closed = false;
  private handshaking: boolean;
  private rest: Buffer | null = null;
  private skip = 0;

  constructor(
    readonly target: Target,
    private readonly opts: ClientOptions,
  ) {
    const { proto, host, port } = target;
    this.handshaking = proto === 'sb' || proto === 'ws' || proto === 'sio';
    // onread into one shared buffer: no Buffer allocated per read (the generator must stay cheaper than the servers).
    this.socket = connect({
      host,
      port,
      localAddress: opts.localAddress,
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array) => {
          this.data((buf as Buffer).subarray(0, n));
          return true; // keep reading (false would pause the socket)
        },
      },
    });
    this.socket.on('connect', () => this.start());
    this.socket.on('error', (err) => this.end(err));
    this.socket.on('close', () => this.end());
  }

  send(buf: Buffer): boolean {
    return this.socket.write(buf);
  }

  private end(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.opts.onClose(err);
  }

  private start(): void {
    const { proto, host } = this.target;
    const topic = this.opts.topic ?? TOPIC;
    if (this.handshaking) this.socket.write(upgradeRequest(this.opts.path ?? wsPath(proto, this.opts.role, topic), host));
    else if (proto === 'mqtt') this.socket.write(this.opts.role === 'sub' ? Buffer.concat([mqttConnect(), mqttSubscribe(topic)]) : mqttConnect());
    else if (proto === 'nats') {
      const sub = this.opts.role === 'sub' ? `SUB ${topicFor('nats', topic)} 1\r\n` : '';
      this.socket.write(`CONNECT {"verbose":false,"pedantic":false,"echo":false}\r\n${sub}PING\r\n`);
    }
  }

  private markReady(): void {
    if (this.ready) return;
    this.ready = true;
    this.opts.onReady();
  }

  private delivered(payload: Buffer | null): void {
    this.frames++;
    if (payload && this.opts.latency) {
      const t = readStamp(payload);
      if (t > 0) this.opts.onLatency?.(nowUs() - t);
    }
  }

  private data(chunk: Buffer): void {
    if (this.rest) {
      chunk = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let i = 0;
    if (this.handshaking) {
      const end = chunk.indexOf('\r\n\r\n');
      if (end < 0) {
        this.rest = Buffer.from(chunk);
        return;
      }
      if (!chunk.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) {
        this.socket.destroy(new Error(`upgrade refused: ${chunk.subarray(0, Math.min(end, 80)).toString()}`));
        return;
      }
      this.handshaking = false;
      i = end + 4;
    }
    if (this.skip > 0) {
      const n = Math.min(this.skip, chunk.length - i);
      this.skip -= n;
      i += n;
    }
    const before = this.frames;
    let stop: number;
    switch (this.target.proto) {
      case 'mqtt':
        stop = this.mqtt(chunk, i);
        break;
      case 'nats':
        stop = this.nats(chunk, i);
        break;
      default:
        stop = this.ws(chunk, i);
    }
    if (this.frames !== before) this.opts.onDeliveries?.(this.frames - before);
    if (stop < chunk.length) this.rest = Buffer.from(chunk.subarray(stop)); // copied: the read buffer is reused
  }

  /** Parses WebSocket frames from `i`; returns where an incomplete frame begins (or the end). */
  private ws(buf: Buffer, i: number): number {
    const len = buf.length;
    const proto = this.target.proto;
    while (i < len) {
      if (len - i < 2) return i;
      const b0 = buf[i]!;
      let plen = buf[i + 1]! & 0x7f;
      let h = 2;
      if (plen === 126) {
        if (len - i < 4) return i;
        plen = buf.readUInt16BE(i + 2);
        h = 4;
      } else if (plen === 127) {
        if (len - i < 10) return i;
        plen = buf.readUInt32BE(i + 6);
        h = 10;
      }
      const opcode = b0 & 0x0f;
      const start = i + h;
      const avail = len - start;
      // Payload needed: control frames, Engine.IO packets (type is the first bytes), the latency subscriber, and frames before ready.
      const needPayload = opcode >= 8 || proto === 'sio' || this.opts.latency || !this.ready;
      if (needPayload) {
        if (avail < plen) return i;
        this.wsFrame(opcode, buf.subarray(start, start + plen));
        i = start + plen;
      } else {
        if (opcode === 1 || opcode === 2) this.delivered(null);
        if (avail < plen) {
          this.skip = plen - avail;
          return len;
        }
        i = start + plen;
      }
    }
    return i;
  }

  private wsFrame(opcode: number, payload: Buffer): void {
    if (opcode === 9) {
      this.socket.write(wsClientFrame(10, payload));
      return;
    }
    if (opcode === 8) {
      this.socket.end();
      return;
    }
    if (opcode !== 1 && opcode !== 2) return;
    if (this.target.proto === 'sio') {
      const t0 = payload[0];
      if (t0 === 0x32 /* '2' ping */) {
        this.socket.write(wsClientFrame(1, Buffer.from('3')));
      } else if (t0 === 0x30 /* '0' open */) {
        this.socket.write(wsClientFrame(1, Buffer.from('40')));
      } else if (t0 === 0x34 && payload[1] === 0x30 /* '40' connected */) {
        this.markReady();
      } else if (t0 === 0x34 && payload[1] === 0x32 /* '42' event */) {
        if (this.ready) this.delivered(payload);
      }
      return;
    }
    if (!this.ready) {
      this.markReady(); // hello (Switchboard) or the baseline server's greeting
      return;
    }
    this.delivered(payload);
  }

  private mqtt(buf: Buffer, i: number): number {
    const len = buf.length;
    while (i < len) {
      if (len - i < 2) return i;
      const type = buf[i]! >> 4;
      let rl = 0;
      let mul = 1;
      let j = i + 1;
      for (;;) {
        if (j >= len) return i;
        const b = buf[j++]!;
        rl += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) break;
      }
      const avail = len - j;
      if (type === 3) {
        if (this.opts.latency) {
          if (avail < rl) return i;
          this.delivered(buf.subarray(j, j + rl));
        } else {
          this.delivered(null);
          if (avail < rl) {
            this.skip = rl - avail;
            return len;
          }
        }
        i = j + rl;
        continue;
      }
      if (avail < rl) return i;
      if (type === 9 /* SUBACK */ || (type === 2 /* CONNACK */ && this.opts.role === 'pub')) this.markReady();
      i = j + rl;
    }
    return i;
  }

  private nats(buf: Buffer, i: number): number {
    const len = buf.length;
    while (i < len) {
      const eol = buf.indexOf('\r\n', i);
      if (eol < 0) return i;
      const c0 = buf[i]!;
      if (c0 === 0x4d /* MSG */) {
        // MSG <subject> <sid> [reply-to] <#bytes>
        let n = 0;
        let mul = 1;
        for (let k = eol - 1; k > i && buf[k] !== 0x20; k--, mul *= 10) n += (buf[k]! - 48) * mul;
        const start = eol + 2;
        const total = n + 2;
        const avail = len - start;
        if (this.opts.latency) {
          if (avail < total) return i;
          this.delivered(buf.subarray(start, start + n));
        } else {
          this.delivered(null);
          if (avail < total) {
            this.skip = total - avail;
            return len;
          }
        }
        i = start + total;
        continue;
      }
      if (c0 === 0x50 /* PING or PONG */) {
        if (buf[i + 1] === 0x49) this.socket.write('PONG\r\n');
        else this.markReady();
      } else if (c0 === 0x2d /* -ERR */) {
        process.stderr.write(`nats: ${buf.subarray(i, eol).toString()}\n`);
      }
      i = eol + 2;
    }
    return i;
  }
}

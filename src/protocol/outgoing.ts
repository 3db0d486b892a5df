// Outgoing: one server frame, encoded once and shared by every mailbox it is queued in.
// Each transport asks for its own bytes; the first ask encodes, the rest reuse.
import type { ClientInfo, ServerFrame } from './frames.js';

export class Outgoing {
  private _json: string | undefined;
  private _ws: Buffer | undefined;
  private _line: Buffer | undefined;
  /** Transport-specific renderings beyond JSON (e.g. the TCP chat line), cached by key. */
  private _extra: Map<string, Buffer> | undefined;

  /**
   * `sender`: who published a `msg`, with the addr the frame itself does not carry (the TCP chat line shows it).
   * Never serialised: the wire format stays the frame.
   */
  constructor(
    readonly frame: ServerFrame,
    readonly sender?: ClientInfo,
  ) {}

  get json(): string {
    return (this._json ??= JSON.stringify(this.frame));
  }

  /** The complete unmasked WebSocket text frame (server-to-client frames are never masked, RFC 6455 §5.1). */
  wsFrame(): Buffer {
    return (this._ws ??= encodeWsTextFrame(Buffer.from(this.json)));
  }

  /** The frame as one JSON line, for the TCP transport. */
  jsonLine(): Buffer {
    return (this._line ??= Buffer.from(this.json + '\n'));
  }

  /** A rendering cached under `key`, built by `render` on first use. */
  rendered(key: string, render: (frame: ServerFrame) => string): Buffer {
    this._extra ??= new Map();
    let buf = this._extra.get(key);
    if (!buf) this._extra.set(key, (buf = Buffer.from(render(this.frame))));
    return buf;
  }
}

export function encodeWsTextFrame(payload: Buffer): Buffer {
  const len = payload.length;
  const headerLength = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(headerLength + len);
  out[0] = 0x81; // FIN + text opcode
  if (len < 126) {
    out[1] = len;
  } else if (len < 65536) {
    out[1] = 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    out.writeUInt32BE(len >>> 0, 6);
  }
  payload.copy(out, headerLength);
  return out;
}

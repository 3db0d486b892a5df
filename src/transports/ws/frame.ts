// WebSocket framing of server frames: built once per message by Outgoing.bytesFor and shared by every subscriber.
import type { Encoding, Outgoing } from '../../protocol/outgoing.js';

/**
 * The complete unmasked WebSocket text frame (server-to-client frames are never masked, RFC 6455 §5.1): one
 * allocation, the JSON written as UTF-8 straight after the header (its size is known: what the mailbox charges).
 */
export const wsTextFrame: Encoding = (out) => {
  const buf = Buffer.allocUnsafe(wsTextFrameSize(out));
  writeWsTextFrame(out, buf, 0);
  return buf;
};

/** The size of `out`'s WebSocket text frame: header and UTF-8 JSON. */
export function wsTextFrameSize(out: Outgoing): number {
  return frameHeaderSize(out.bytes) + out.bytes;
}

/**
 * Writes `out`'s WebSocket text frame into `buf` at `at` (room for wsTextFrameSize(out) bytes); returns where it ends.
 * A turn's frames for one socket are written this way into one buffer (Mailbox), with no buffer of their own.
 */
export function writeWsTextFrame(out: Outgoing, buf: Buffer, at: number): number {
  const len = out.bytes;
  at = writeFrameHeader(buf, at, 0x81, len); // FIN + text opcode
  const json = out.json;
  // UTF-8 size equal to the length: every character is ASCII, whose latin1 bytes are its UTF-8 (a copy, no encoding).
  if (len === json.length) buf.write(json, at, len, 'latin1');
  else buf.write(json, at, len);
  return at + len;
}

/** The header size of an unmasked frame of `len` payload bytes (7-, 16- or 64-bit length). */
function frameHeaderSize(len: number): number {
  return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

/** Writes an unmasked frame's header (`first`: FIN and opcode) for `len` payload bytes at `at`; returns where the payload goes. */
function writeFrameHeader(buf: Buffer, at: number, first: number, len: number): number {
  buf[at] = first;
  if (len < 126) {
    buf[at + 1] = len;
    return at + 2;
  }
  if (len < 65536) {
    buf[at + 1] = 126;
    buf[at + 2] = len >>> 8;
    buf[at + 3] = len & 0xff;
    return at + 4;
  }
  buf[at + 1] = 127;
  buf.writeUInt32BE(Math.floor(len / 2 ** 32), at + 2);
  buf.writeUInt32BE(len >>> 0, at + 6);
  return at + 10;
}

/** An unmasked frame (`first`: FIN and opcode) around `payload`: the server's control frames, encodeWsTextFrame. */
export function wsFrame(first: number, payload: Buffer | undefined): Buffer {
  const len = payload === undefined ? 0 : payload.length;
  const out = Buffer.allocUnsafe(frameHeaderSize(len) + len);
  const at = writeFrameHeader(out, 0, first, len);
  if (payload !== undefined) payload.copy(out, at);
  return out;
}

export function encodeWsTextFrame(payload: Buffer): Buffer {
  return wsFrame(0x81, payload); // FIN + text opcode
}

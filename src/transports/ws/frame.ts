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
  const len = out.bytes;
  return (len < 126 ? 2 : len < 65536 ? 4 : 10) + len;
}

/**
 * Writes `out`'s WebSocket text frame into `buf` at `at` (room for wsTextFrameSize(out) bytes); returns where it ends.
 * A turn's frames for one socket are written this way into one buffer (Mailbox), with no buffer of their own.
 */
export function writeWsTextFrame(out: Outgoing, buf: Buffer, at: number): number {
  const len = out.bytes;
  buf[at] = 0x81; // FIN + text opcode
  if (len < 126) {
    buf[at + 1] = len;
    at += 2;
  } else if (len < 65536) {
    buf[at + 1] = 126;
    buf[at + 2] = len >>> 8;
    buf[at + 3] = len & 0xff;
    at += 4;
  } else {
    buf[at + 1] = 127;
    buf.writeUInt32BE(Math.floor(len / 2 ** 32), at + 2);
    buf.writeUInt32BE(len >>> 0, at + 6);
    at += 10;
  }
  const json = out.json;
  // UTF-8 size equal to the length: every character is ASCII, whose latin1 bytes are its UTF-8 (a copy, no encoding).
  if (len === json.length) buf.write(json, at, len, 'latin1');
  else buf.write(json, at, len);
  return at + len;
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

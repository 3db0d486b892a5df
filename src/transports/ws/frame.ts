// WebSocket framing of server frames: built once per message by Outgoing.bytesFor and shared by every subscriber.
import type { Encoding } from '../../protocol/outgoing.js';

/**
 * The complete unmasked WebSocket text frame (server-to-client frames are never masked, RFC 6455 §5.1): one
 * allocation, the JSON written as UTF-8 straight after the header (its size is known: what the mailbox charges).
 */
export const wsTextFrame: Encoding = (out) => {
  const len = out.bytes;
  const at = writeHeader(len);
  const buf = Buffer.allocUnsafe(at + len);
  header.copy(buf, 0, 0, at);
  const json = out.json;
  // UTF-8 size equal to the length: every character is ASCII, whose latin1 bytes are its UTF-8 (a copy, no encoding).
  if (len === json.length) buf.write(json, at, len, 'latin1');
  else buf.write(json, at);
  return buf;
};

const header = Buffer.alloc(10);
/** Writes the header of a text frame of `len` payload bytes into `header`; returns its length. */
function writeHeader(len: number): number {
  header[0] = 0x81; // FIN + text opcode
  if (len < 126) {
    header[1] = len;
    return 2;
  }
  if (len < 65536) {
    header[1] = 126;
    header.writeUInt16BE(len, 2);
    return 4;
  }
  header[1] = 127;
  header.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
  header.writeUInt32BE(len >>> 0, 6);
  return 10;
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

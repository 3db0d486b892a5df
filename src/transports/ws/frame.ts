// WebSocket framing of server frames: built once per message by Outgoing.bytesFor and shared by every subscriber.
import type { Encoding } from '../../protocol/outgoing.js';

/** The complete unmasked WebSocket text frame (server-to-client frames are never masked, RFC 6455 §5.1). */
export const wsTextFrame: Encoding = (out) => encodeWsTextFrame(Buffer.from(out.json));

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

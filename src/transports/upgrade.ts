// Refusing a raw HTTP socket before any protocol runs on it: shared by every upgrade path (WebSocket, lines, the
// actors page) and by the HTTP server's accept-time refusals.
import type { Duplex } from 'node:stream';

/** How long a refused socket may stay after its answer, for the peer to read it before we cut it. */
const REFUSED_LINGER_MS = 1000;

/**
 * Answers a raw HTTP socket (an upgrade request, or a socket refused on accept) with a plain HTTP error and drops
 * it: ended at once, cut when the peer ends too or after a short linger, so a peer that never closes holds nothing.
 */
export function refuseUpgrade(socket: Duplex, status: number, statusText: string, message: string): void {
  const body = JSON.stringify({ error: message });
  socket.end(
    `HTTP/1.1 ${status} ${statusText}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  const linger = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
  socket.once('end', () => socket.destroy());
  socket.resume(); // read (and drop) whatever the peer still sends, so its end is seen
}

// Idle WebSocket clients for benchmarks that measure connections, not traffic (connection-memory, mass-disconnect):
// opened from four loopback source addresses (past one address's ephemeral ports), a few hundred handshakes at a
// time, each counted once the broker admitted it (its hello).
import WebSocket from 'ws';

/** Loopback source addresses the load generators spread their sockets over. */
export const SOURCES = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];

/** Opens `n` WebSocket connections to `url`, 200 handshakes in flight at a time; resolves once every one has its hello. */
export async function openIdleSockets(url: string, n: number): Promise<WebSocket[]> {
  const open: WebSocket[] = [];
  const connectOne = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(url, { localAddress: SOURCES[i % SOURCES.length] });
      ws.once('message', () => resolve()); // hello: the broker has admitted it
      ws.once('error', reject);
      ws.on('error', () => undefined);
      open.push(ws);
    });
  // A few hundred handshakes in flight at a time: the broker's accept path is not what is measured.
  for (let i = 0; i < n; i += 200) await Promise.all(Array.from({ length: Math.min(200, n - i) }, (_, k) => connectOne(i + k)));
  return open;
}

// Ports for tests that need one nobody listens on (a dead URL, a broker to start there later, a documented command).
import { createServer } from 'node:net';

/** A port nobody listens on now (taken from the system, then let go). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

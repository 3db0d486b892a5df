// Ports for tests that need one nobody listens on (a dead URL, a broker to start there later, a documented command).
import { createServer } from 'node:net';

/** Ports this process has handed out: the system may give the same free port to bind(0) twice in a row. */
const handedOut = new Set<number>();

/** A port nobody listens on now (taken from the system, then let go), never one this process handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    if (!handedOut.has(port) || attempt >= 20) {
      handedOut.add(port);
      return port;
    }
  }
}

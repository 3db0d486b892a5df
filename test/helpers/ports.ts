// Ports for tests that need one before a server listens on it: a broker process started with `--port N`, a dead
// URL, a Redis a test stops and starts again, a documented command.
//
// Never from the kernel's ephemeral range (32768 up here): every outgoing connection of every process on the machine
// takes its local port from there, so a port found free by bind(0) and let go could be some client's socket by the
// time the child process binds it (EADDRINUSE, seen with four vitest workers at load 25-38), and a Redis a test
// stopped could see its port taken while it is down. So ports come from a band of 1,000 below that range that is
// this vitest worker's own (VITEST_POOL_ID: workers never share one), checked free by binding it, and never the
// same one twice in this process. A Redis Cluster node's bus port (port + 10,000) lands in the worker's band above
// 20,000, which nothing else hands out.
import { createServer } from 'node:net';

const BAND = 1000;
const base = 10_000 + (Number(process.env.VITEST_POOL_ID ?? 0) % 10) * BAND;
/** Offsets within the band not yet handed out, in a shuffled order (two processes of one worker start apart). */
let next = Math.floor(Math.random() * BAND);
const handedOut = new Set<number>();

/** Whether 127.0.0.1:`port` can be listened on right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A port nobody listens on now, from this worker's band, never one this process handed out before. With `bus`,
 * port + 10,000 is free too (a Redis Cluster node's bus port).
 */
export async function freePort(bus = false): Promise<number> {
  for (let tries = 0; tries < BAND; tries++) {
    const port = base + (next++ % BAND);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if ((await portFree(port)) && (!bus || (await portFree(port + 10_000)))) return port;
  }
  throw new Error(`no free port left in ${base}-${base + BAND - 1} (this process has handed out ${handedOut.size})`);
}

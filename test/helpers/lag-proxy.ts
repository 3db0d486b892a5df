// LagProxy: a TCP proxy that holds each connection's client-to-broker bytes for a lag of its own (0, 15, 30 ms,
// … in turn), in order. Requests of different connections then reach the broker in another order than they were
// sent, as on a real network: a checker must never assume the order of frames across connections. It can also
// rewrite what the broker sends each connection (a planted fault between the broker and one client).
import { createServer, connect, type Server, type Socket } from 'node:net';

export class LagProxy {
  private readonly sockets = new Set<Socket>();
  private accepted = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /**
   * Connection n is lagged by (n mod `steps`) × `stepMs`. `fromBroker`, when given, makes each connection's rewriter
   * of the broker's bytes to the client (what it returns is passed on).
   */
  static async start(targetPort: number, stepMs = 15, steps = 3, fromBroker?: () => (chunk: Buffer) => Buffer): Promise<LagProxy> {
    let proxy!: LagProxy;
    const server = createServer((down) => {
      const lagMs = (proxy.accepted++ % steps) * stepMs;
      const up = connect(targetPort, '127.0.0.1');
      for (const s of [down, up]) proxy.sockets.add(s);
      const end = () => {
        down.destroy();
        up.destroy();
        proxy.sockets.delete(down);
        proxy.sockets.delete(up);
      };
      // Each chunk leaves lagMs after it came: timers of one delay fire in the order they were set.
      down.on('data', (chunk: Buffer) => (lagMs === 0 ? up.write(chunk) : setTimeout(() => up.destroyed || up.write(chunk), lagMs)));
      down.on('end', () => setTimeout(() => up.end(), lagMs));
      const rewrite = fromBroker?.();
      up.on('data', (chunk: Buffer) => down.write(rewrite ? rewrite(chunk) : chunk));
      up.on('end', () => down.end());
      for (const s of [down, up]) {
        s.on('error', end);
        s.on('close', end);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    proxy = new LagProxy(server, typeof address === 'object' && address ? address.port : 0);
    return proxy;
  }

  url(path = '/ws'): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

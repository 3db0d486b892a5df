// UpgradeBlockingProxy: a TCP proxy in front of the broker that refuses every WebSocket upgrade (403), as some
// corporate proxies do, and passes plain HTTP (pages, event streams, POSTs) through. It can cut every connection.
import { connect, createServer, type Server, type Socket } from 'node:net';

export class UpgradeBlockingProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  upgradesRefused = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(port: number, targetPort: number): Promise<UpgradeBlockingProxy> {
    let proxy!: UpgradeBlockingProxy;
    const server = createServer((down) => {
      const up = connect(targetPort, '127.0.0.1');
      const pair: [Socket, Socket] = [down, up];
      proxy.pairs.add(pair);
      const end = () => {
        proxy.pairs.delete(pair);
        down.destroy();
        up.destroy();
      };
      down.on('data', (chunk: Buffer) => {
        if (/\r\nupgrade:\s*websocket/i.test(chunk.toString('latin1'))) {
          proxy.upgradesRefused++;
          up.destroy();
          down.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
          return;
        }
        up.write(chunk);
      });
      up.on('data', (chunk: Buffer) => down.write(chunk));
      down.on('close', end);
      up.on('close', end);
      down.on('error', end);
      up.on('error', end);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    proxy = new UpgradeBlockingProxy(server, port);
    return proxy;
  }

  /** Drops every connection through the proxy (a network failure). */
  cutAll(): void {
    for (const [down, up] of this.pairs) {
      down.destroy();
      up.destroy();
    }
    this.pairs.clear();
  }

  close(): Promise<void> {
    this.cutAll();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// CuttingProxy: a TCP proxy between the client and the broker that drops connections on demand, also in the
// middle of a frame, so reconnects happen at arbitrary points of the byte stream.
import { createServer, connect, type Server, type Socket } from 'node:net';

export class CuttingProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  private cutAfter: number | undefined;
  cuts = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<CuttingProxy> {
    let proxy!: CuttingProxy;
    const server = createServer((down) => {
      const up = connect(targetPort, '127.0.0.1');
      const pair: [Socket, Socket] = [down, up];
      proxy.pairs.add(pair);
      const end = () => {
        proxy.pairs.delete(pair);
        down.destroy();
        up.destroy();
      };
      down.on('data', (chunk: Buffer) => up.write(chunk));
      up.on('data', (chunk: Buffer) => {
        if (proxy.cutAfter !== undefined && chunk.length > proxy.cutAfter) {
          down.write(chunk.subarray(0, proxy.cutAfter)); // a torn frame, then nothing
          proxy.cutAfter = undefined;
          proxy.cuts++;
          end();
          return;
        }
        if (proxy.cutAfter !== undefined) proxy.cutAfter -= chunk.length;
        down.write(chunk);
      });
      for (const s of pair) {
        s.on('error', end);
        s.on('close', end);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    proxy = new CuttingProxy(server, typeof address === 'object' && address ? address.port : 0);
    return proxy;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** Drops every proxied connection now. */
  cut(): void {
    for (const [down, up] of this.pairs) {
      down.destroy();
      up.destroy();
    }
    if (this.pairs.size > 0) this.cuts++;
    this.pairs.clear();
  }

  /** Drops the connection after `bytes` more bytes from the broker, mid-frame when it falls there. */
  cutAfterBytes(bytes: number): void {
    this.cutAfter = bytes;
  }

  get connections(): number {
    return this.pairs.size;
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Polls `cond` until true (a condition, not a sleep: it returns as soon as it holds). */
export async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

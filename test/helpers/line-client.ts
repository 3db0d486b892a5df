// LineClient: a real TCP client of the line protocol that records every line and lets tests await them in order.
import { connect, type Socket } from 'node:net';
import { FRAME_WAIT_MS } from './waits.js';

type Waiter = { pred: (line: string) => boolean; resolve: (line: string) => void };

let barriers = 0;

export class LineClient {
  /** Lines received and not yet taken by next(). */
  readonly inbox: string[] = [];
  /** Every line ever received, in order. */
  readonly all: string[] = [];
  /** Resolves when the server has closed the connection (end or reset). */
  readonly closed: Promise<void>;
  private waiters: Waiter[] = [];
  private partial = '';

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      const parts = (this.partial + text).split('\n');
      this.partial = parts.pop()!;
      for (const line of parts) this.take(line);
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
  }

  /** Connects and waits for the greeting's first line; with `token`, authenticates with it first (auth on). */
  static async connect(port: number, token?: string): Promise<LineClient> {
    const socket = connect(port, '127.0.0.1');
    const client = new LineClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => {
        client.addr = `127.0.0.1:${socket.localPort}`;
        resolve();
      });
      socket.once('error', reject);
    });
    if (token !== undefined) client.send(JSON.stringify({ op: 'auth', token }));
    await client.next((l) => l.startsWith('I am here'));
    return client;
  }

  /**
   * Reaches the line protocol through the broker's HTTP port (`GET /lines?…`, `Upgrade: switchboard-lines`) and waits
   * for the greeting; rejects with the HTTP status line when the broker refuses.
   */
  static async upgrade(httpPort: number, query = ''): Promise<LineClient> {
    const socket = connect(httpPort, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(`GET /lines${query} HTTP/1.1\r\nHost: 127.0.0.1:${httpPort}\r\nUpgrade: switchboard-lines\r\nConnection: Upgrade\r\n\r\n`);
    const rest = await new Promise<Buffer>((resolve, reject) => {
      let got = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        const end = got.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.pause();
        const status = got.subarray(0, got.indexOf('\r\n')).toString();
        if (!status.startsWith('HTTP/1.1 101')) return reject(new Error(`${status} ${got.subarray(end + 4).toString()}`));
        resolve(got.subarray(end + 4));
      };
      socket.on('data', onData);
      socket.once('close', () => reject(new Error('closed during the upgrade')));
    });
    if (rest.length > 0) socket.unshift(rest);
    const client = new LineClient(socket);
    client.addr = `127.0.0.1:${socket.localPort}`;
    socket.resume();
    await client.next((l) => l.startsWith('I am here'));
    return client;
  }

  /** This client's address as the server sees it (`127.0.0.1:port`), the default TCP name. */
  addr = '';

  private take(line: string): void {
    this.all.push(line);
    const i = this.waiters.findIndex((w) => w.pred(line));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(line);
    else this.inbox.push(line);
  }

  /** The first line (received or to come) matching `pred`, removed from the inbox. */
  next(pred: ((line: string) => boolean) | string = () => true, timeoutMs = FRAME_WAIT_MS): Promise<string> {
    const match = typeof pred === 'string' ? (l: string) => l === pred : pred;
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        pred: match,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no matching line within ${timeoutMs} ms (${String(pred)}); inbox: ${JSON.stringify(this.inbox).slice(0, 600)}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** The next JSON line matching `pred`, parsed. */
  async nextJson(pred: (f: Record<string, any>) => boolean = () => true, timeoutMs = FRAME_WAIT_MS): Promise<Record<string, any>> {
    const line = await this.next((l) => {
      if (!l.startsWith('{')) return false;
      try {
        return pred(JSON.parse(l));
      } catch {
        return false;
      }
    }, timeoutMs);
    return JSON.parse(line);
  }

  /** Sends one line (a `\n` is appended). */
  send(line: string): void {
    this.socket.write(line + '\n');
  }

  /** Sends raw bytes, no terminator added. */
  sendRaw(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /** True when no line matching `pred` has arrived by a ping/pong barrier (a JSON-line ping; see TestClient.quiet). */
  async quiet(pred: (line: string) => boolean): Promise<boolean> {
    const id = `quiet${++barriers}`;
    this.send(JSON.stringify({ op: 'ping', id }));
    await this.next((l) => l.includes('"op":"pong"') && l.includes(`"${id}"`));
    return !this.inbox.some(pred);
  }

  close(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

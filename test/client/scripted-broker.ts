// ScriptedBroker: a real WebSocket server (the `ws` package on a free port) that says hello and then does what the
// test tells it: close with any code, drop the TCP connection, refuse upgrades with an HTTP status, answer frames.
// For the client's behaviours a real broker cannot be made to show on demand (a 4001, a 1000 not asked for) and
// for contracts whose broker side lives on another branch (token refresh, CONTRACT-auth.md).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

export interface ScriptedConnection {
  ws: WebSocket;
  /** The request URL (path and query) the client dialled. */
  url: URL;
  /** Every frame the client sent, parsed. */
  frames: Record<string, any>[];
  send(frame: Record<string, unknown>): void;
  closed: Promise<{ code: number; reason: string }>;
}

type FrameHandler = (conn: ScriptedConnection, frame: Record<string, any>) => void;

export class ScriptedBroker {
  readonly connections: ScriptedConnection[] = [];
  /** Answers frames; by default every request (a frame with an id) gets a bare ack. */
  onFrame: FrameHandler = (conn, frame) => {
    if (frame.id !== undefined && frame.op !== 'quit') conn.send({ op: 'ack', id: frame.id });
  };
  /** Upgrades are refused with this status while set. */
  refuse: { status: number; body?: string } | undefined;
  private readonly wss = new WebSocketServer({ noServer: true });
  private clientSeq = 0;

  private constructor(
    private readonly http: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<ScriptedBroker> {
    const http = createServer((_req, res) => {
      res.writeHead(426).end();
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const address = http.address();
    const broker = new ScriptedBroker(http, typeof address === 'object' && address ? address.port : 0);
    http.on('upgrade', (req, socket, head) => broker.upgrade(req, socket, head));
    return broker;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get last(): ScriptedConnection {
    return this.connections[this.connections.length - 1]!;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.refuse) {
      const body = this.refuse.body ?? JSON.stringify({ error: 'unauthorized', message: 'refused by the test' });
      socket.end(`HTTP/1.1 ${this.refuse.status} Refused\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, new URL(req.url ?? '/', `http://127.0.0.1:${this.port}`)));
  }

  private accept(ws: WebSocket, url: URL): void {
    const id = `c${++this.clientSeq}`;
    const conn: ScriptedConnection = {
      ws,
      url,
      frames: [],
      send: (frame) => ws.send(JSON.stringify(frame)),
      closed: new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
    };
    this.connections.push(conn);
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Record<string, any>;
      conn.frames.push(frame);
      this.onFrame(conn, frame);
    });
    const name = url.searchParams.get('name') ?? `guest-${this.clientSeq}`;
    conn.send({
      op: 'hello',
      client: { id, name, transport: 'ws', addr: '127.0.0.1:1' },
      heartbeatMs: 25000,
      idleMs: 60000,
      idleClose: 'tcp',
      server: { name: 'scripted', version: 'test', protocol: 2 },
    });
  }
}

/** An unsigned JWT-shaped token (the client reads `exp`/`iat` from it only to schedule; the scripted broker trusts it). */
export function fakeJwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.sig`;
}

/** The claims of a token made by fakeJwt. */
export function claimsOf(token: string): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
}

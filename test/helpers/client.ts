// TestClient: a real WebSocket client that records every frame and lets tests await them in order.
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { FRAME_WAIT_MS } from './waits.js';
import { keepSocket, socketOf } from './ws-socket.js';

export type Frame = Record<string, any> & { op: string };
type Waiter = { pred: (f: Frame) => boolean; resolve: (f: Frame) => void };

let nextRequestId = 1;

export class TestClient {
  /** Frames received and not yet taken by next(). */
  readonly inbox: Frame[] = [];
  /** Every frame ever received, in order. */
  readonly all: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  hello!: Frame;
  private waiters: Waiter[] = [];

  private constructor(readonly ws: WebSocket) {
    keepSocket(ws);
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      this.all.push(frame);
      const i = this.waiters.findIndex((w) => w.pred(frame));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(frame);
      else this.inbox.push(frame);
    });
  }

  /** The TCP connection under the WebSocket (ws-socket.ts): to write raw frames (to stop reading: ws.pause()). */
  get socket(): Socket {
    return socketOf(this.ws);
  }

  /** Connects and waits for hello. */
  static async connect(url: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
    const ws = new WebSocket(url, options);
    const client = new TestClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    client.hello = await client.next((f) => f.op === 'hello');
    return client;
  }

  /** The first frame (received or to come) matching `pred`, removed from the inbox. */
  next(pred: (f: Frame) => boolean = () => true, timeoutMs = FRAME_WAIT_MS): Promise<Frame> {
    const i = this.inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        pred,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no matching frame within ${timeoutMs} ms; inbox: ${JSON.stringify(this.inbox).slice(0, 500)}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /**
   * Sends `frame` with a fresh id and waits for the reply carrying that id (ack, error or pong), up to `timeoutMs`
   * (longer for a request whose answer may rightly take seconds, such as a publish during a Redis failover).
   */
  async request(frame: Record<string, unknown>, timeoutMs = 3000): Promise<Frame> {
    const id = frame.id ?? `r${nextRequestId++}`;
    this.send({ ...frame, id });
    return this.next((f) => f.id === id && (f.op === 'ack' || f.op === 'error' || f.op === 'pong'), timeoutMs);
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /**
   * True when no frame matching `pred` has arrived by a ping/pong barrier: the broker answers a ping after
   * everything it queued for this client before, so whatever an already answered request caused is in by then.
   */
  async quiet(pred: (f: Frame) => boolean): Promise<boolean> {
    const pong = await this.request({ op: 'ping', id: `quiet${nextRequestId++}` });
    if (pong.op !== 'pong') throw new Error(`barrier ping answered with ${JSON.stringify(pong)}`);
    return !this.inbox.some(pred);
  }

  close(): void {
    this.ws.close();
  }
}

// Probe: one connection the checker drives, whatever its transport. It records every frame in arrival order (that
// order is what the checker compares), lets a step wait for a reply without consuming anything, and says what of the
// model's frames its transport can show (view). WsProbe is here; the line protocol, Server-Sent Events and MQTT have
// their own files (lines-probe.ts, sse-probe.ts, mqtt-probe.ts).
import WebSocket from 'ws';
import type { Expected } from '../protocol/model.js';

export type Frame = Record<string, unknown> & { op: string };

type Waiter = { pred: (f: Frame) => boolean; resolve: (f: Frame) => void };

export class ProbeError extends Error {}

/** What a probe's view of the model's frames may depend on: the client as the model has it after the step. */
export interface ViewOf {
  /** The filters the client holds. */
  filters: readonly string[];
  /**
   * The QoS of the step's publish as MQTT sees it: an MQTT client's QoS 0 notification or QoS 1 publish, 2 for any
   * other transport's (MQTT delivers at the lower of it and the subscription's).
   */
  publishQos: 0 | 1 | 2;
}

export abstract class Probe {
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  /** Resolves with the close code once the connection is gone (1006 when it just dropped). */
  readonly closed: Promise<number>;
  protected settleClosed!: (code: number) => void;
  private waiters: Waiter[] = [];

  constructor() {
    this.closed = new Promise((resolve) => (this.settleClosed = resolve));
  }

  /** Opens a WebSocket to `url` and waits for its first frame (the hello, when the broker is right). */
  static async connect(url: string, timeoutMs: number): Promise<Probe> {
    return WsProbe.open(url, timeoutMs);
  }

  /**
   * The model's frames for this client as its transport shows them (the frames this probe records are in that
   * form too). The JSON transports show them as they are.
   */
  view(expected: Expected[], _client: ViewOf): Expected[] {
    return expected;
  }

  abstract readonly open: boolean;
  /** Sends a protocol frame (or a raw text, to be refused); `qos` is for transports that have one (MQTT). */
  abstract send(frame: unknown, qos?: 0 | 1): void;
  /** Closes the socket without a goodbye: the broker sees an abrupt disconnect. */
  abstract drop(): void;
  /** Polite close at the end of a run. */
  abstract close(): void;

  /** The first frame, received or to come, matching `pred`; it stays recorded. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs: number, what: string): Promise<Frame> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new ProbeError(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = { pred, resolve: (f) => (clearTimeout(timer), resolve(f)) };
      this.waiters.push(waiter);
    });
  }

  /** A frame received as JSON text. */
  protected receive(text: string): void {
    let frame: Frame;
    try {
      const value = JSON.parse(text) as unknown;
      frame = typeof value === 'object' && value !== null && 'op' in value ? (value as Frame) : { op: '<not a frame>', text };
    } catch {
      frame = { op: '<not JSON>', text };
    }
    this.record(frame);
  }

  /** A frame received, in the form view() gives the model's (for transports that are not JSON frames). */
  protected record(frame: Frame): void {
    this.frames.push(frame);
    const hit = this.waiters.filter((w) => w.pred(frame));
    this.waiters = this.waiters.filter((w) => !hit.includes(w));
    for (const w of hit) w.resolve(frame);
  }
}

class WsProbe extends Probe {
  private constructor(private readonly ws: WebSocket) {
    super();
    ws.on('close', (code) => this.settleClosed(code));
    ws.on('message', (data, isBinary) => this.receive(isBinary ? '<binary>' : data.toString()));
  }

  static async open(url: string, timeoutMs: number): Promise<Probe> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const probe = new WsProbe(ws);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new ProbeError(`no WebSocket connection to ${url} within ${timeoutMs} ms`)), timeoutMs);
        ws.once('open', () => (clearTimeout(timer), resolve()));
        ws.once('error', (err) => (clearTimeout(timer), reject(new ProbeError(`cannot connect to ${url}: ${err.message}`))));
        ws.once('unexpected-response', (_req, res) => (clearTimeout(timer), reject(new ProbeError(`${url} answered HTTP ${res.statusCode}`))));
      });
      await probe.waitFor(() => true, timeoutMs, 'the first frame (hello)');
    } catch (err) {
      // A socket left open keeps the process alive: the checker would say why it failed, then never exit.
      ws.terminate();
      throw err;
    }
    return probe;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  drop(): void {
    this.ws.terminate();
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
  }
}

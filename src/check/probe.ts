// Probe: one connection the checker drives. It records every frame in arrival order (that order is
// what the checker compares), and lets a step wait for a reply without consuming anything.
import WebSocket from 'ws';

export type Frame = Record<string, unknown> & { op: string };

type Waiter = { pred: (f: Frame) => boolean; resolve: (f: Frame) => void };

export class ProbeError extends Error {}

export class Probe {
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  /** Resolves with the close code once the connection is gone (1006 when it just dropped). */
  readonly closed: Promise<number>;
  closeCode: number | undefined;
  private waiters: Waiter[] = [];

  private constructor(private readonly ws: WebSocket) {
    this.closed = new Promise((resolve) =>
      ws.on('close', (code) => {
        this.closeCode = code;
        resolve(code);
      }),
    );
    ws.on('message', (data, isBinary) => this.receive(isBinary ? '<binary>' : data.toString()));
  }

  /** Opens a WebSocket to `url` and waits for its first frame (the hello, when the broker is right). */
  static async connect(url: string, timeoutMs: number): Promise<Probe> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const probe = new Probe(ws);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ProbeError(`no WebSocket connection to ${url} within ${timeoutMs} ms`)), timeoutMs);
      ws.once('open', () => (clearTimeout(timer), resolve()));
      ws.once('error', (err) => (clearTimeout(timer), reject(new ProbeError(`cannot connect to ${url}: ${err.message}`))));
      ws.once('unexpected-response', (_req, res) => (clearTimeout(timer), reject(new ProbeError(`${url} answered HTTP ${res.statusCode}`))));
    });
    await probe.waitFor(() => true, timeoutMs, 'the first frame (hello)');
    return probe;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

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

  /** Closes the socket without a close handshake: the broker sees an abrupt disconnect. */
  drop(): void {
    this.ws.terminate();
  }

  /** Polite close at the end of a run. */
  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
  }

  private receive(text: string): void {
    let frame: Frame;
    try {
      const value = JSON.parse(text) as unknown;
      frame = typeof value === 'object' && value !== null && 'op' in value ? (value as Frame) : { op: '<not a frame>', text };
    } catch {
      frame = { op: '<not JSON>', text };
    }
    this.frames.push(frame);
    const hit = this.waiters.filter((w) => w.pred(frame));
    this.waiters = this.waiters.filter((w) => !hit.includes(w));
    for (const w of hit) w.resolve(frame);
  }
}

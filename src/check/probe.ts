// Probe: one connection the checker drives, over WebSocket or TCP JSON lines. It records every frame
// in arrival order (that order is what the checker compares), and lets a step wait for a reply
// without consuming anything.
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import WebSocket from 'ws';
import { LineSplitter } from '../transports/tcp/lines.js';

export type Frame = Record<string, unknown> & { op: string };

type Waiter = { pred: (f: Frame) => boolean; resolve: (f: Frame) => void };

export class ProbeError extends Error {}

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
   * Opens the line protocol through the broker's HTTP port (`GET /lines?room=…`, Upgrade: switchboard-lines), so the
   * connection joins `room` instead of the broker's --room; it speaks JSON lines, and its first frame is a hello
   * built from the greeting line (the line protocol greets in text).
   */
  static async connectLines(url: string, room: string, timeoutMs: number, name?: string): Promise<Probe> {
    return TcpProbe.open(linesUrl(url, room, name), timeoutMs);
  }

  /**
   * Opens a Server-Sent Events stream (`GET /sse?…` beside the WebSocket endpoint `wsUrl`, docs/sse.md) and waits for
   * its hello; frames sent go as POSTs to the stream, in order.
   */
  static async connectSse(wsUrl: string, query: { name?: string; topics?: string[] }, timeoutMs: number): Promise<Probe> {
    return SseProbe.open(sseUrl(wsUrl, query), timeoutMs);
  }

  abstract readonly open: boolean;
  abstract send(frame: unknown): void;
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

  protected receive(text: string): void {
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

class WsProbe extends Probe {
  private constructor(private readonly ws: WebSocket) {
    super();
    ws.on('close', (code) => this.settleClosed(code));
    ws.on('message', (data, isBinary) => this.receive(isBinary ? '<binary>' : data.toString()));
  }

  static async open(url: string, timeoutMs: number): Promise<Probe> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const probe = new WsProbe(ws);
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

  drop(): void {
    this.ws.terminate();
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
  }
}

const GREETING = /^I am here: .*? You are (.*?)(?: from (\S+))? \(id (c\d+)\)\./;

/** TCP: lines starting with `{` are frames; other lines (greeting, chat room traffic, `bye`) are kept aside. */
class TcpProbe extends Probe {
  /** Plain-text lines: the greeting, the room's chat lines, and `bye` before the server ends the stream. */
  readonly lines: string[] = [];
  private ended = false;

  private constructor(private readonly socket: Socket) {
    super();
    const splitter = new LineSplitter(16 * 1024 * 1024);
    socket.on('data', (chunk: Buffer) => {
      for (const e of splitter.push(chunk)) {
        if (e.kind !== 'line') continue;
        if (e.text.startsWith('{')) this.receive(e.text);
        else this.lines.push(e.text);
      }
    });
    socket.on('error', () => {}); // the close event below reports the end either way
    socket.on('close', () => {
      this.ended = true;
      // TCP has no close codes: the server's last line says `bye` (1000) or `bye: reason (code)`.
      const last = this.lines.at(-1) ?? '';
      const code = last === 'bye' ? 1000 : Number(/\((\d+)\)$/.exec(last)?.[1] ?? 1006);
      this.settleClosed(code);
    });
  }

  static async open(url: URL, timeoutMs: number): Promise<Probe> {
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port || (url.protocol === 'wss:' ? 443 : 80));
    const socket: Socket = url.protocol === 'wss:' ? tlsConnect({ host, port, servername: host }) : tcpConnect({ host, port, noDelay: true });
    socket.on('error', () => {}); // reported by the upgrade below, or by the close event once it is a probe
    let timer: NodeJS.Timeout | undefined;
    const early = await Promise.race([
      upgradeToLines(socket, url),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new ProbeError(`no line protocol at ${url} within ${timeoutMs} ms`)), timeoutMs))),
    ]).finally(() => clearTimeout(timer)).catch((err: unknown) => {
      socket.destroy();
      throw err;
    });
    const probe = new TcpProbe(socket);
    if (early.length > 0) socket.unshift(early);
    socket.resume();
    // TCP greets in text: `… You are <name>[ from <addr>] (id c<n>).` (the name is the address by default).
    // Protocol 2's `who` shows no addresses to non-admins, so the greeting is where this connection learns its own.
    const deadline = Date.now() + timeoutMs;
    let greeting: RegExpExecArray | null = null;
    while (!(greeting = probe.lines.map((l) => GREETING.exec(l)).find((m) => m !== null) ?? null)) {
      if (Date.now() > deadline || !probe.open) throw new ProbeError(`no TCP greeting naming this connection within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 2));
    }
    const [, name, from, id] = greeting;
    const me = { id: id!, name: name!, addr: from ?? name!, transport: 'tcp' };
    const rest = probe.frames.slice();
    probe.frames.length = 0;
    probe.frames.push({ op: 'hello', client: me, heartbeatMs: 0, idleMs: 0, idleClose: true, server: {} }, ...rest);
    return probe;
  }

  get open(): boolean {
    return !this.ended && !this.socket.destroyed;
  }

  send(frame: unknown): void {
    this.socket.write((typeof frame === 'string' ? frame : JSON.stringify(frame)) + '\n');
  }

  drop(): void {
    this.socket.resetAndDestroy();
  }

  close(): void {
    if (!this.socket.destroyed) this.socket.end();
  }
}

/** Server-Sent Events: `message` events are frames; `close` carries the close code; other events are not frames. */
class SseProbe extends Probe {
  private ended = false;
  private post: URL | undefined;
  private readonly outbox: string[] = [];
  private posting = false;
  private closeCode = 1006;
  private buffer = '';
  private event = { type: '', data: [] as string[] };

  private constructor(
    private readonly req: ClientRequest,
    private readonly res: IncomingMessage,
    private readonly base: URL,
  ) {
    super();
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => this.feed(chunk));
    res.on('error', () => {}); // the close below reports the end either way
    res.on('close', () => {
      this.ended = true;
      this.settleClosed(this.closeCode);
    });
  }

  static async open(url: URL, timeoutMs: number): Promise<Probe> {
    let timer: NodeJS.Timeout | undefined;
    const opened = new Promise<{ req: ClientRequest; res: IncomingMessage }>((resolve, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { headers: { accept: 'text/event-stream' } }, (res) => resolve({ req, res }));
      req.on('error', (err) => reject(new ProbeError(`cannot connect to ${url}: ${err.message}`)));
      req.end();
    });
    const { req, res } = await Promise.race([
      opened,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new ProbeError(`no event stream at ${url} within ${timeoutMs} ms`)), timeoutMs))),
    ]).finally(() => clearTimeout(timer));
    if (res.statusCode !== 200) {
      res.resume();
      throw new ProbeError(`${url} answered HTTP ${res.statusCode}`);
    }
    const probe = new SseProbe(req, res, url);
    await probe.waitFor(() => true, timeoutMs, 'the first frame (hello)');
    return probe;
  }

  get open(): boolean {
    return !this.ended;
  }

  send(frame: unknown): void {
    this.outbox.push(typeof frame === 'string' ? frame : JSON.stringify(frame));
    this.flush();
  }

  drop(): void {
    this.req.destroy();
    this.res.destroy();
  }

  close(): void {
    this.drop();
  }

  /** One POST at a time keeps the frames in order (the broker reads each POST's lines in order). */
  private flush(): void {
    if (this.posting || this.ended || this.post === undefined || this.outbox.length === 0) return;
    this.posting = true;
    const body = this.outbox.splice(0).join('\n');
    fetch(this.post, { method: 'POST', body, headers: { 'content-type': 'text/plain' } })
      .then((r) => r.arrayBuffer())
      .catch(() => undefined) // a stream gone: its close is what the checker looks at
      .finally(() => {
        this.posting = false;
        this.flush();
      });
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      if (line === '') this.dispatch();
      else if (line.startsWith('event:')) this.event.type = line.slice(6).trim();
      else if (line.startsWith('data:')) this.event.data.push(line.slice(5).replace(/^ /, ''));
    }
  }

  private dispatch(): void {
    const { type, data } = this.event;
    this.event = { type: '', data: [] };
    if (data.length === 0) return;
    const text = data.join('\n');
    if (type === 'stream') {
      this.post = new URL((JSON.parse(text) as { post: string }).post, this.base);
      return this.flush();
    }
    if (type === 'close') {
      this.closeCode = (JSON.parse(text) as { code: number }).code;
      return;
    }
    if (type === '' || type === 'message') this.receive(text);
    else this.receive(JSON.stringify({ op: `<sse ${type}>`, text })); // notRecovered and the like: shown, compared
  }
}

/** The `/sse` endpoint beside the WebSocket one at `wsUrl`, with the name and filters asked at connect. */
function sseUrl(wsUrl: string, query: { name?: string; topics?: string[] }): URL {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = '/sse';
  url.search = '';
  if (query.name !== undefined) url.searchParams.set('name', query.name);
  if (query.topics !== undefined && query.topics.length > 0) url.searchParams.set('topics', query.topics.join(','));
  return url;
}

/** The `/lines` endpoint beside the WebSocket one at `wsUrl` (same host and port), asking for `room` and `name`. */
function linesUrl(wsUrl: string, room: string, name: string | undefined): URL {
  const url = new URL(wsUrl);
  url.pathname = '/lines';
  url.search = '';
  url.searchParams.set('room', room);
  if (name !== undefined) url.searchParams.set('name', name);
  return url;
}

/** Sends the upgrade request and resolves with the bytes after the `101` response's header, the socket paused. */
function upgradeToLines(socket: Socket, url: URL): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const fail = (err: Error) => reject(new ProbeError(`cannot connect to ${url.host}: ${err.message}`));
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', fail);
      socket.pause();
      const status = got.subarray(0, got.indexOf('\r\n')).toString();
      if (!/^HTTP\/1\.1 101 /.test(status)) return reject(new ProbeError(`${url} answered ${status.replace(/^HTTP\/1\.1 /, 'HTTP ')}: ${got.subarray(end + 4).toString().slice(0, 200)}`));
      resolve(got.subarray(end + 4));
    };
    socket.once('error', fail);
    socket.on('data', onData);
    socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: switchboard-lines\r\nConnection: Upgrade\r\n\r\n`);
  });
}

// SseClient: a real Server-Sent Events client over node:http, parsing the stream as a browser's EventSource does
// (fields id / event / data / retry, comments, blank-line dispatch), recording every event and the last event id.
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { FRAME_WAIT_MS } from './waits.js';

export interface SseEvent {
  event: string;
  data: string;
  /** The stream's last event id when this event was dispatched (what a reconnect would send). */
  lastEventId: string;
  /** The frame, for `message` events (JSON). */
  frame?: Record<string, any>;
}

type Waiter = { pred: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void };

export class SseClient {
  readonly all: SseEvent[] = [];
  readonly inbox: SseEvent[] = [];
  readonly comments: string[] = [];
  lastEventId = '';
  stream = '';
  post = '';
  hello: Record<string, any> = {};
  readonly ended: Promise<void>;
  private waiters: Waiter[] = [];
  private buffer = '';
  private event = { type: '', data: [] as string[], id: undefined as string | undefined };

  private constructor(
    readonly base: string,
    readonly req: ClientRequest,
    readonly res: IncomingMessage,
  ) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => this.feed(chunk));
    this.ended = new Promise((resolve) => res.on('close', () => resolve()));
  }

  /** Opens `GET <base><path>`; resolves with the client (status 200, after its hello) or with the refusal. */
  static async open(base: string, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const { req, res } = await get(base + path, headers);
    if (res.statusCode !== 200) {
      let body = '';
      for await (const c of res) body += c;
      throw Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body: JSON.parse(body) });
    }
    const client = new SseClient(base, req, res);
    const stream = await client.next((e) => e.event === 'stream');
    const info = JSON.parse(stream.data) as { stream: string; post: string };
    client.stream = info.stream;
    client.post = info.post;
    client.hello = (await client.next((e) => e.frame?.op === 'hello')).frame!;
    return client;
  }

  /** Status and JSON body of a refused `GET` (for tests of refusals). */
  static async refusal(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    try {
      const c = await SseClient.open(base, path, headers);
      c.close();
      return { status: 200, body: null };
    } catch (err) {
      const e = err as { status?: number; body?: unknown };
      if (e.status === undefined) throw err;
      return { status: e.status, body: e.body };
    }
  }

  /** POSTs frames (one per line) to the stream; the HTTP status and JSON answer. */
  async send(frames: object | object[] | string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    const body = typeof frames === 'string' ? frames : (Array.isArray(frames) ? frames : [frames]).map((f) => JSON.stringify(f)).join('\n');
    const res = await fetch(this.base + this.post, { method: 'POST', body, headers: { 'content-type': 'text/plain', ...headers } });
    return { status: res.status, body: await res.json() };
  }

  /** The next event matching `pred` (received or to come), taken from the inbox. */
  next(pred: (e: SseEvent) => boolean = () => true, timeoutMs = FRAME_WAIT_MS): Promise<SseEvent> {
    const i = this.inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no matching SSE event within ${timeoutMs} ms; got ${JSON.stringify(this.all.slice(-5))}`));
      }, timeoutMs);
      const waiter: Waiter = {
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** The next frame (a `message` event) matching `pred`. */
  async frame(pred: (f: Record<string, any>) => boolean = () => true, timeoutMs = FRAME_WAIT_MS): Promise<Record<string, any>> {
    return (await this.next((e) => e.frame !== undefined && pred(e.frame), timeoutMs)).frame!;
  }

  /** Stops reading without closing: the broker's writes pile up in the socket (a slow consumer). */
  pause(): void {
    this.res.pause();
  }

  /** Drops the connection as a network failure would. */
  close(): void {
    this.req.destroy();
    this.res.destroy();
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + (this.buffer.startsWith('\r\n', nl) ? 2 : 1));
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return void this.comments.push(line.slice(1).trim());
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event.type = value;
    else if (field === 'data') this.event.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.event.id = value;
  }

  private dispatch(): void {
    const { type, data, id } = this.event;
    this.event = { type: '', data: [], id: undefined };
    if (id !== undefined) this.lastEventId = id; // the spec: an event's id counts even when it has no data
    if (data.length === 0) return;
    const e: SseEvent = { event: type || 'message', data: data.join('\n'), lastEventId: this.lastEventId };
    if (e.event === 'message') e.frame = JSON.parse(e.data) as Record<string, any>;
    this.all.push(e);
    const i = this.waiters.findIndex((w) => w.pred(e));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(e);
    else this.inbox.push(e);
  }
}

function get(url: string, headers: Record<string, string>): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => resolve({ req, res }));
    req.on('error', reject);
    req.end();
  });
}

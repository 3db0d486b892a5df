// SseProbe: a checker connection over Server-Sent Events (docs/sse.md): `GET /sse?…` beside the WebSocket endpoint,
// `message` events are frames, and the frames it sends go as POSTs to the stream, in order.
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Probe, ProbeError } from './probe.js';

/** Opens an event stream beside the WebSocket endpoint `wsUrl`, with the name and filters asked, and waits for its hello. */
export function connectSse(wsUrl: string, query: { name?: string; topics?: string[] }, timeoutMs: number): Promise<Probe> {
  return SseProbe.open(sseUrl(wsUrl, query), timeoutMs);
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


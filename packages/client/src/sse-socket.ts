// SseSocket: the broker's Server-Sent Events transport (GET /sse, POST /sse?stream=<id>) behind the same face as a
// WebSocket, so the client's lifecycle, requests, resumes and queues work unchanged when WebSocket is blocked.
// Frames arrive as `message` events; frames sent are POSTed in order, one request at a time, batched one per line.
// The browser's own EventSource reconnect is turned off: the client reconnects itself and resumes from its positions.
import type { SocketHandler, WebSocketLike } from './socket.js';
import { tokenExpired } from './lifecycle.machine.js';

/** The part of an EventSource the socket uses: the browser's fits. */
export interface EventSourceLike {
  readonly readyState: number;
  close(): void;
  onmessage: SocketHandler<{ data: unknown }> | null;
  onerror: SocketHandler<unknown> | null;
  addEventListener(type: string, listener: (event: { data?: unknown }) => void): void;
}
export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike;

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;
/** How long close() waits for what was written before it to be POSTed before it ends the stream anyway. */
const CLOSE_DRAIN_MS = 5000;
/** A POST carries queued frames up to this many bytes (the broker's default --max-payload, which bounds a POST body). */
const POST_BYTES = 65_536;

/** The SSE twin of a WebSocket URL: `ws://h/ws?x` → `http://h/sse?x`; `/ws/<topic>` → `topics=<topic>`. */
export function sseUrl(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  if (url.pathname.startsWith('/ws/') && url.pathname.length > 4) {
    const topic = decodeURIComponent(url.pathname.slice(4));
    const topics = url.searchParams.get('topics');
    url.searchParams.set('topics', topics ? `${topic},${topics}` : topic);
  }
  url.pathname = '/sse';
  return url.toString();
}

export class SseSocket implements WebSocketLike {
  readyState = CONNECTING;
  onopen: SocketHandler<unknown> | null = null;
  onmessage: SocketHandler<{ data: unknown }> | null = null;
  onclose: SocketHandler<{ code: number; reason: string }> | null = null;
  onerror: SocketHandler<unknown> | null = null;
  private readonly source: EventSourceLike;
  private post: string | undefined;
  /** The token POSTs carry: the stream's own, until a refresh on this connection brings a fresh one (useToken). */
  private postToken: string | null;
  private readonly outbox: string[] = [];
  private posting = false;
  /** A POST of several frames was refused as too large (a broker with a lower --max-payload): one frame a POST from now. */
  private oneByOne = false;
  /** close() while frames were still to POST: the close it ends with once they went (or CLOSE_DRAIN_MS passed). */
  private closing: { code: number; reason: string; timer: ReturnType<typeof setTimeout> } | undefined;

  constructor(
    wsUrl: string,
    EventSourceClass: EventSourceConstructor,
    private readonly fetcher: typeof fetch = (...args) => fetch(...args),
  ) {
    const url = sseUrl(wsUrl);
    this.postToken = new URL(url).searchParams.get('token');
    this.source = new EventSourceClass(url);
    this.source.addEventListener('stream', (e) => {
      if (this.readyState !== CONNECTING) return;
      try {
        const info = JSON.parse(String(e.data)) as { post: string };
        this.post = new URL(info.post, url).toString();
        if (this.postToken !== null) this.useToken(this.postToken);
      } catch {
        return this.end(1002, 'the broker sent a stream event that is not JSON');
      }
      this.readyState = OPEN;
      this.onopen?.({});
      this.flush();
    });
    this.source.onmessage = (e) => {
      if (this.readyState === OPEN) this.onmessage?.({ data: e.data });
    };
    this.source.addEventListener('close', (e) => {
      let close = { code: 1006, reason: '' };
      try {
        close = JSON.parse(String(e.data)) as { code: number; reason: string };
      } catch {
        // A close event we cannot read is a lost connection.
      }
      this.end(close.code, close.reason);
    });
    // Any error (refused, dropped): this socket is done; the client dials again and resumes from its positions.
    this.source.onerror = () => {
      this.onerror?.({ message: 'event stream failed' });
      this.end(1006, this.readyState === CONNECTING ? 'the event stream could not be opened' : 'the event stream was lost');
    };
  }

  send(data: string): void {
    if (this.readyState !== OPEN) return;
    this.outbox.push(data);
    this.flush();
  }

  /**
   * An `auth` with `token` is about to go on this stream: when the stream's own token has (nearly) expired (the
   * broker said `token_expired`), the POST of that `auth` must already carry the fresh one, or it is refused.
   */
  refreshing(token: string): void {
    if (tokenExpired(this.postToken ?? undefined, Date.now())) this.useToken(token);
  }

  /**
   * POSTs from now on carry `token`: the broker verifies every POST's token, and the one the stream was opened with
   * expires; a refresh of this connection's token (`auth`) brings the one to use instead.
   */
  useToken(token: string): void {
    this.postToken = token;
    if (this.post === undefined) return;
    const post = new URL(this.post);
    post.searchParams.set('token', token);
    this.post = post.toString();
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === CLOSED || this.readyState === CLOSING) return;
    // A quit already queued goes first (as a WebSocket sends what was written before its close): the broker ends
    // the stream (1000) after it.
    if (this.readyState === OPEN && (this.posting || this.outbox.length > 0)) {
      this.readyState = CLOSING;
      const timer = setTimeout(() => this.end(code, reason), CLOSE_DRAIN_MS);
      (timer as { unref?: () => void }).unref?.(); // in Node, a closed client keeps no process alive for it
      this.closing = { code, reason, timer };
      return;
    }
    this.end(code, reason);
  }

  /**
   * One POST at a time keeps the frames in order; what queued meanwhile goes in the next, one frame per line, as many
   * as fit in POST_BYTES (the broker refuses a body over its --max-payload with 413, having taken none of it).
   */
  private flush(): void {
    if (this.closing && !this.posting && this.outbox.length === 0) return this.end(this.closing.code, this.closing.reason);
    if (this.posting || this.outbox.length === 0 || this.post === undefined) return;
    // Counted in characters: a body of non-ASCII text may be more bytes, and a 413 then turns to one frame a POST.
    let count = 1;
    let size = this.outbox[0]!.length;
    while (!this.oneByOne && count < this.outbox.length && size + 1 + this.outbox[count]!.length <= POST_BYTES) size += 1 + this.outbox[count++]!.length;
    const frames = this.outbox.splice(0, count);
    this.posting = true;
    this.fetcher(this.post, { method: 'POST', body: frames.join('\n'), headers: { 'Content-Type': 'text/plain' } }).then(
      (res) => {
        this.posting = false;
        if (res.status === 413 && frames.length > 1 && (this.readyState === OPEN || this.readyState === CLOSING)) {
          // Several frames over this broker's limit: sent again, one a POST.
          this.oneByOne = true;
          this.outbox.unshift(...frames);
          return this.flush();
        }
        // One frame over the limit: as a WebSocket broker closes with 1009.
        if (res.status === 413) return this.end(1009, 'a frame is larger than the broker takes (--max-payload)');
        // 404 / 410: the stream is gone on the broker's side; anything else refused: this socket cannot speak.
        if (res.status !== 202) return this.end(1006, `POST refused: HTTP ${res.status}`);
        this.flush();
      },
      (err: unknown) => {
        this.posting = false;
        this.end(1006, `POST failed: ${(err as Error)?.message ?? String(err)}`);
      },
    );
  }

  private end(code: number, reason: string): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    if (this.closing) clearTimeout(this.closing.timer);
    this.source.close();
    this.outbox.length = 0;
    this.onclose?.({ code, reason });
  }
}

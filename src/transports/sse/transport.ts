// SSE transport: `GET /sse` opens an event stream (a connection actor like every other, transport `sse`);
// `POST /sse?stream=<id>` carries the client's frames to it (publish, sub/unsub, who, send, rename, auth, quit).
// The stream id is 128 random bits: whoever holds it (and, with auth on, a token for the same client) speaks for
// the stream. On a cluster it starts with the id of the node holding the stream (`<node>.<bits>`): a POST that
// reaches another node is checked there and carried to that node (forwarding.ts).
// A `Last-Event-ID` (or `?lastEventId=`) resumes the filters and positions of its cursor (cursor.ts).
import { randomBytes } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { openConnection, type BrokerCore } from '../../actors/connection.js';
import type { Link } from '../../actors/link.js';
import type { FrameReader } from '../../actors/reader.js';
import type { ConnectionActor } from '../../actors/connection.machine.js';
import { AuthFailure, requestToken } from '../../auth/tokens.js';
import type { Grant } from '../../auth/grant.js';
import { validateClientFrame } from '../../protocol/frames.js';
import { ProtocolError } from '../../protocol/errors.js';
import type { RequestFrame } from '../../engine/engine.js';
import { CURSOR_MAX_BYTES, decodeCursor, resumeFrames, type Cursor } from './cursor.js';
import { admitThroughHook } from '../../hooks/connect.js';
import { CURSOR_MARK, RESUMED, SseWire } from './wire.js';
import type { NodeCalls } from '../../engine/redis/calls.js';
import { refusal, SseForwarding, type PostAnswer, type RemoteStream } from './forwarding.js';

/** The JSON error code of a stream the connect hook refused, by its status. */
const HOOK_REFUSAL_CODES = { 401: 'unauthorized', 403: 'forbidden', 409: 'name_taken', 503: 'unavailable' } as const;

export const SSE_PATH = '/sse';
/** The reconnect delay the stream asks browsers for (`retry:`), in ms. */
export const SSE_RETRY_MS = 1000;
/** The cookie a browser may carry its token in, when no header or query gives one. */
export const TOKEN_COOKIE = 'switchboard_token';

export interface Stream {
  link: Link;
  reader: FrameReader;
  wire: SseWire;
  actor: ConnectionActor;
}

/** What the transport needs of the broker's origin policy. */
export interface OriginCheck {
  allows(origin: string | undefined): boolean;
}

/** A request refused before (or instead of) its stream: the HTTP layer answers it as JSON with this status. */
export class SseRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** What a stream resumes from: its cursor, none readable (null), or none used: the connect hook chose its subscriptions. */
type Resume = Cursor | null | 'replaced';

export class SseTransport {
  /** Open streams by id: a Map, ids come from clients. */
  private readonly streams = new Map<string, Stream>();
  /** Sockets carrying a stream (one each). */
  private readonly streamSockets = new WeakSet<object>();
  /** On a cluster: POSTs for streams of other nodes, carried there. */
  private readonly forwarding: SseForwarding | undefined;

  constructor(
    private readonly core: BrokerCore,
    private readonly origins: OriginCheck,
    private readonly log: Logger,
    calls?: NodeCalls,
  ) {
    this.forwarding = calls && new SseForwarding(calls, this, core.config.closeTimeoutMs);
  }

  get size(): number {
    return this.streams.size;
  }

  /** `GET /sse?topics=a,b/#&name=…&token=…`: checks, then the stream. Refusals are JSON answers, as on `/ws`. */
  async open(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    this.corsHeaders(req, res);
    const refused = this.originRefusal(req);
    if (refused) throw refused;
    const topics = (url.searchParams.get('topics') ?? '').split(',').filter((t) => t.length > 0);
    const name = url.searchParams.get('name') ?? undefined;
    const lastEventId = headerValue(req.headers['last-event-id']) ?? url.searchParams.get('lastEventId') ?? undefined;
    const grant = await this.authorize(req);
    if (grant && !this.core.hub.isNameFree(grant.name)) throw new SseRefusal(409, `client '${grant.name}' is already connected`, 'name_taken');
    if (req.socket.destroyed) return;
    // One stream per socket: a socket holds one connection slot, and requests pipelined behind a stream would each
    // open one (and, their responses queued behind it, never hear the socket close).
    const socket = req.socket;
    if (this.streamSockets.has(socket)) throw new SseRefusal(429, 'one stream per connection: this connection already carries one', 'rate_limited');
    // Taken now, before anything is awaited (the requests pipelined behind this one are handled meanwhile).
    this.streamSockets.add(socket);
    try {
      await this.openOn(req, res, topics, name, grant, lastEventId);
    } catch (err) {
      this.streamSockets.delete(socket);
      throw err;
    }
  }

  /** The stream, once its socket is taken: through the connect hook, then from its cursor. */
  private async openOn(req: IncomingMessage, res: ServerResponse, topics: string[], name: string | undefined, grant: Grant | undefined, lastEventId: string | undefined): Promise<void> {
    // The application backend's connect hook, as at every other transport's door: it may refuse, or say who connects.
    const addr = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    // At most as many filters as a connection may hold (a stream's cursor never has more): what a resume costs is bounded.
    const limits = { maxBytes: CURSOR_MAX_BYTES, maxFilters: this.core.config.maxSubscriptions };
    const cursor = lastEventId === undefined || lastEventId === '' ? undefined : decodeCursor(lastEventId, limits);
    const resumable = cursor !== undefined && cursor.flag !== 'f';
    // A resume subscribes the cursor's filters (not the URL's): those are the initial subscriptions the hook vouches for.
    const asked = resumable ? cursor.filters.map((f) => f.filter) : topics;
    const hooked = await admitThroughHook(this.core.hooks, { transport: 'sse', addr, name, topics: asked, token: grant, http: req }, (n) => this.core.hub.isNameFree(n));
    if (hooked && !hooked.ok) {
      this.core.faults?.note('info', { addr: req.socket.remoteAddress, status: hooked.status, reason: hooked.message }, 'sse stream refused by the connect hook');
      throw new SseRefusal(hooked.status, hooked.message, HOOK_REFUSAL_CODES[hooked.status]);
    }
    if (req.socket.destroyed) return;
    const admitted = hooked ? { topics: hooked.topics, grant: hooked.grant, meta: hooked.meta } : { topics: asked, grant, meta: undefined };
    // The backend chose other subscriptions than the cursor's: those, afresh (the stream says the cursor was not used).
    const replaced = resumable && admitted.topics !== asked;
    const resume = lastEventId === undefined || lastEventId === '' ? undefined : replaced ? 'replaced' : (cursor ?? null);
    this.start(req, res, { topics: resumable && !replaced ? [] : admitted.topics, name, grant: admitted.grant }, resume, admitted.meta);
  }

  /**
   * `POST /sse?stream=<id>`, before its body is read: the stream it addresses, once origin and token are checked.
   * Then `deliver` hands it the body.
   */
  async addressed(req: IncomingMessage, res: ServerResponse, url: URL): Promise<Stream | RemoteStream> {
    this.corsHeaders(req, res);
    const refused = this.originRefusal(req);
    if (refused) throw refused;
    const id = url.searchParams.get('stream') ?? '';
    const remote = this.forwarding?.ownerOf(id);
    if (remote !== undefined) return { node: remote, stream: id, name: this.core.tokens ? (await this.authorize(req))?.name : undefined };
    const stream = this.streams.get(id);
    if (!stream) throw new SseRefusal(404, 'no such stream (closed, or never opened here); open a new one with GET /sse', 'not_found');
    if (this.core.tokens) this.checkName(stream, (await this.authorize(req))?.name);
    return stream;
  }

  /** With auth on, a POST's token must name the stream's client. */
  private checkName(stream: Stream, name: string | undefined): void {
    if (name !== undefined && name !== stream.link.name) throw new SseRefusal(403, 'the token names another client than the stream', 'forbidden');
  }

  /** A POST's body for a stream of another node: carried there; its answer, or why there is none. */
  forward(target: RemoteStream, body: Buffer): Promise<PostAnswer> {
    return this.forwarding!.forward(target, body);
  }

  /** A POST another node checked (origin, token: `name`) and carried here, answered as the route answers it. */
  answerPost(id: string, name: string | undefined, body: Buffer): PostAnswer {
    const stream = this.streams.get(id);
    if (!stream) return refusal(404, 'not_found', 'no such stream (closed, or never opened); open a new one with GET /sse');
    try {
      if (this.core.tokens && name === undefined) return refusal(401, 'unauthorized', 'a token is required (the node that took the POST checked none)');
      if (this.core.tokens) this.checkName(stream, name);
      return { status: 202, body: this.deliver(stream, body) };
    } catch (err) {
      if (err instanceof SseRefusal) return refusal(err.status, err.code, err.message);
      throw err;
    }
  }

  /** A POST's body: one frame, or several one per line, handed to the stream's reader in order. */
  deliver(stream: Stream, body: Buffer): { accepted: number } {
    if (!stream.link.isOpen) throw new SseRefusal(410, 'the stream is closing', 'gone');
    let accepted = 0;
    try {
      // Split as bytes, each line checked as UTF-8: invalid bytes are refused (bad_frame, as a TCP line of them is),
      // never replaced with U+FFFD and published altered.
      for (let start = 0; start <= body.length; ) {
        let end = body.indexOf(0x0a, start);
        if (end < 0) end = body.length;
        const line = body.subarray(start, end > start && body[end - 1] === 0x0d ? end - 1 : end);
        start = end + 1;
        if (!isUtf8(line)) {
          accepted++;
          stream.reader.unreadable(new ProtocolError('bad_frame', 'frame is not valid UTF-8; it was skipped'), line.length);
          continue;
        }
        const text = line.toString('utf8');
        if (text.trim() === '') continue;
        accepted++;
        stream.reader.text(text, line.length);
      }
    } catch (error) {
      // A throw in the reader is this stream's crash (1011), never the process's.
      stream.actor.send({ type: 'FAULT', error });
    }
    stream.wire.filtersMayChange();
    this.mark(stream, CURSOR_MARK);
    return { accepted };
  }

  /** `OPTIONS /sse`: a browser's preflight for a cross-origin POST (allowed origins only). */
  preflight(req: IncomingMessage, res: ServerResponse): void {
    const refused = this.originRefusal(req);
    if (refused) throw refused;
    this.corsHeaders(req, res);
    res.writeHead(204, {
      'Access-Control-Allow-Methods': 'GET, POST',
      'Access-Control-Allow-Headers': 'Authorization, Content-Type, Last-Event-ID',
      'Access-Control-Max-Age': '600',
    });
    res.end();
  }

  private start(req: IncomingMessage, res: ServerResponse, request: { topics: string[]; name: string | undefined; grant: Grant | undefined }, cursor: Resume | undefined, meta?: Record<string, unknown>): void {
    const streamId = (this.forwarding ? `${this.forwarding.node}.` : '') + randomBytes(16).toString('base64url');
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no', // proxies (nginx) would otherwise hold events back
    });
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    res.write(`retry: ${SSE_RETRY_MS}\nevent: stream\ndata: ${JSON.stringify({ stream: streamId, post: `${SSE_PATH}?stream=${streamId}` })}\n\n`);
    // A resuming stream writes no cursor before its filters are back (a cursor without them would lose them).
    const wire = new SseWire(res, this.core.hub.life, cursor !== undefined, this.core.config.closeTimeoutMs);
    const addr = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const { link, reader, actor } = openConnection(this.core, wire, addr, request, meta);
    wire.filters = link;
    const stream: Stream = { link, reader, wire, actor };
    wire.markCursor = () => this.mark(stream, CURSOR_MARK);
    this.streams.set(streamId, stream);
    const socket = req.socket; // taken in open(), before anything was awaited
    const closed = () => {
      // The socket may carry another stream once this one is over (keep-alive).
      this.streamSockets.delete(socket);
      socket.off('close', closed);
      this.streams.delete(streamId);
      if (actor.getSnapshot().status === 'active') actor.send({ type: 'SOCKET_CLOSED', code: 1006, reason: 'stream closed by the client' });
    };
    res.on('close', closed);
    // The socket too: a response that is not the socket's current one (behind another) hears no close of its own.
    socket.once('close', closed);
    res.on('error', (err) => this.core.faults?.note('info', { client: link.id, err: err.message }, 'sse stream error'));
    actor.subscribe({ error: () => wire.close(1011, 'internal error') });
    if (cursor !== undefined) {
      let resumed = false;
      const watch = actor.subscribe(() => {
        if (resumed || !link.isOpen) return;
        resumed = true;
        queueMicrotask(() => watch.unsubscribe());
        this.resume(stream, cursor);
      });
    }
    actor.start();
  }

  /** Re-subscribes a reconnecting stream from its cursor; what cannot be recovered is said first, per filter. */
  private resume(stream: Stream, cursor: Resume): void {
    this.resubscribe(stream, cursor);
    // The cursor waits for the re-subscribes: on a cluster they are done once Redis answered them, after this returns,
    // and a cursor written before (by a message meanwhile) would hold none of the filters: a reconnect with it would
    // lose them all. A ping is answered after every earlier request of the stream: its pong releases the ids.
    const id = this.ownId();
    stream.wire.own(id, RESUMED, stream.link.mailbox.capacity);
    this.core.hub.ping(stream.link, id);
  }

  private resubscribe(stream: Stream, cursor: Resume): void {
    if (cursor === 'replaced') return this.mark(stream, null, { reason: 'subscriptions_replaced', message: "the application backend chose this stream's subscriptions; Last-Event-ID was not used" });
    if (cursor === null) return this.mark(stream, null, { reason: 'bad_cursor', message: 'Last-Event-ID is not a cursor of this broker; subscribed afresh from the URL' });
    if (cursor.flag === 'f') return this.mark(stream, null, { reason: 'cursor_overflow', message: 'the filters did not fit in the cursor; subscribed afresh from the URL' });
    stream.wire.seed(cursor.positions, cursor.flag === 'p');
    const { frames, unresumable } = resumeFrames(cursor);
    const fresh = new Set(unresumable);
    for (const frame of frames) {
      const filter = frame.topic as string;
      let id: string | undefined;
      // Live only, said first; sent without an id, so its ack (there is none) cannot read as a verdict.
      if (fresh.has(filter)) this.mark(stream, filter, { reason: 'cursor_overflow', message: 'positions of this filter did not fit in the cursor' });
      else stream.wire.own((id = this.ownId()), filter, stream.link.mailbox.capacity);
      const valid = validateClientFrame(id === undefined ? frame : { ...frame, id });
      try {
        if (valid instanceof ProtocolError) this.core.hub.fail(stream.link, valid);
        else this.core.hub.handle(stream.link, valid as RequestFrame);
      } catch (err) {
        this.log.error({ err, client: stream.link.id }, 'engine fault while resuming a stream');
        this.core.hub.fail(stream.link, new ProtocolError('internal', 'internal error', id));
      }
    }
  }

  /** Queues one of the stream's own frames: a cursor mark, or a verdict on `filter` (null: the whole stream). */
  private mark(stream: Stream, meaning: string | null | typeof CURSOR_MARK, verdict?: { reason: string; message: string }): void {
    const id = this.ownId();
    stream.wire.own(id, meaning, stream.link.mailbox.capacity);
    stream.link.send(verdict ? { op: 'ack', id, recovered: false, ...verdict } : { op: 'ack', id });
  }

  private ownId(): string {
    return 'sse:' + randomBytes(12).toString('base64url');
  }

  private originRefusal(req: IncomingMessage): SseRefusal | undefined {
    const origin = req.headers.origin;
    if (this.origins.allows(origin)) return undefined;
    this.core.faults?.note('info', { origin, addr: req.socket.remoteAddress, flag: '--allowed-origins' }, 'sse request refused: origin not allowed');
    return new SseRefusal(403, `origin '${String(origin).slice(0, 200)}' is not allowed`, 'forbidden');
  }

  /** A cross-origin page (an allowed origin) may read the answer. */
  private corsHeaders(req: IncomingMessage, res: ServerResponse): void {
    const origin = req.headers.origin;
    if (origin === undefined || !this.origins.allows(origin)) return;
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Access-Control-Allow-Credentials', 'true');
    res.setHeader('Vary', 'Origin');
  }

  /** The grant of the request's token (header, query or cookie), undefined with auth off; refusals are 401. */
  private async authorize(req: IncomingMessage): Promise<Grant | undefined> {
    const tokens = this.core.tokens;
    if (!tokens) return undefined;
    const grant = await tokens.verify(requestToken(req) ?? cookieToken(req));
    if (grant instanceof AuthFailure) {
      this.core.faults?.note('info', { addr: req.socket.remoteAddress, reason: grant.message }, 'sse request refused: unauthorized');
      throw new SseRefusal(401, grant.message, 'unauthorized');
    }
    return grant;
  }

  /** Shutdown: the supervisor closes every stream's actor (1001); nothing of the transport's own to stop. */
  close(): void {
    this.streams.clear();
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function cookieToken(req: IncomingMessage): string | undefined {
  const cookie = req.headers.cookie;
  if (!cookie) return undefined;
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === TOKEN_COOKIE) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

// Dialer: opens the client's sockets, one for each dial of the lifecycle machine. It owns which URL is dialled (in
// turn, endpoints.ts) and how (WebSocket, or Server-Sent Events where that URL's WebSocket cannot be opened,
// fallback.ts), the silence watch of each socket, and what a socket's end tells the machine: lost, refused (with the
// HTTP status when the platform shows it) or never opened. Frames and the end of each socket go to the client.
import { Endpoints } from './endpoints.js';
import { SwitchboardError } from './errors.js';
import { SseFallback, type DialTransport } from './fallback.js';
import type { Dial, LastClose, SocketHandle, SocketReport } from './lifecycle.machine.js';
import { SilenceWatch } from './silence.js';
import type { WebSocketConstructor, WebSocketLike } from './socket.js';
import { SseSocket, type EventSourceConstructor } from './sse-socket.js';

/** What the dialer needs of its client. */
export interface DialHost {
  /** The name to ask for at this connect (`?name=`). */
  name(): string | undefined;
  /** `ws` was dialled: it is the client's socket now. */
  dialled(ws: WebSocketLike): void;
  /** A text frame came on `ws`. */
  text(ws: WebSocketLike, text: string): void;
  /** `ws` closed, was lost or was ended by the client: told once for each socket, before the machine hears of it. */
  gone(ws: WebSocketLike, close: LastClose): void;
  /** Why the client itself ends its socket (close(), an `unavailable`), when it does. */
  closingAs(): LastClose | undefined;
  /** The broker's heartbeat (the hello's `heartbeatMs`), which the silence watch steps by. */
  heartbeatMs(): number;
  /** Sends a ping when the connection said hello (a pong is a frame heard). */
  ping(): void;
}

export interface DialerOptions {
  url: unknown;
  /** Undefined: loaded from the `ws` package at the first connect (Node 20). */
  WebSocket: WebSocketConstructor | undefined;
  /** Undefined: no SSE fallback. */
  EventSource: EventSourceConstructor | undefined;
  /** How long a URL stays on SSE before WebSocket is tried there again (fallback.ts WS_RETRY_MS by default). */
  wsRetryMs?: number | undefined;
}

export class Dialer {
  private readonly endpoints: Endpoints;
  /** Which transport each URL is dialled with: WebSocket, or SSE where a WebSocket could not be opened. */
  private readonly fallback: SseFallback;
  private WebSocketClass: WebSocketConstructor | undefined;
  private readonly EventSourceClass: EventSourceConstructor | undefined;
  /** The socket dialled last, until it is gone, and its transport. */
  private current: { ws: WebSocketLike; via: DialTransport } | undefined;

  /** Throws `bad_option` for a bad URL (endpoints.ts). */
  constructor(
    options: DialerOptions,
    private readonly host: DialHost,
  ) {
    this.endpoints = new Endpoints(options.url);
    this.WebSocketClass = options.WebSocket;
    this.EventSourceClass = options.EventSource;
    this.fallback = new SseFallback(this.EventSourceClass !== undefined, new Set(this.endpoints.all).size, options.wsRetryMs);
  }

  /** The URLs dialled, as checked at construction (a URL without a path has `/ws`). */
  get urls(): readonly string[] {
    return this.endpoints.all;
  }

  /** The transport of the current socket (between sockets: of the next dial). */
  get transport(): DialTransport {
    return this.current?.via ?? this.fallback.transportFor(this.endpoints.here);
  }

  /** The plain-HTTP twin of the URL dialled now, with `token` (what `diagnose()` asks). */
  probe(token: string | undefined): string {
    return this.endpoints.probe(token);
  }

  /** Makes sure there is a WebSocket class; rejects with `bad_option` when none can be had. */
  async load(): Promise<void> {
    if (this.WebSocketClass) return;
    // Node 20 has no global WebSocket: the `ws` package (an optional peer dependency; kept out of browser bundles).
    try {
      const mod = (await import('ws')) as unknown as { default: WebSocketConstructor };
      this.WebSocketClass = mod.default;
    } catch (err) {
      throw new SwitchboardError(
        'bad_option',
        `no WebSocket in this runtime and the ws package could not be loaded (${(err as Error).message}): npm install ws, or pass the WebSocket option`,
      );
    }
  }

  readonly dial: Dial = (token, report) => {
    let ws: WebSocketLike;
    // The transport is the URL's own: a proxy that blocks upgrades on the way to one node says nothing of another.
    const here = this.endpoints.here;
    const via = this.fallback.transportFor(here);
    try {
      const url = this.endpoints.current(token, this.host.name());
      ws = via === 'sse' && this.EventSourceClass ? new SseSocket(url, this.EventSourceClass) : new this.WebSocketClass!(url);
    } catch (err) {
      // A platform that refuses the URL at construction (a browser's mixed-content block): a failed dial, reported
      // like any other, and the next dial tries the next URL.
      this.endpoints.next();
      queueMicrotask(() => report.dropped(1006, `cannot open a WebSocket: ${(err as Error).message}`));
      return { close: () => {} };
    }
    this.current = { ws, via };
    this.host.dialled(ws);
    return this.watch(ws, here, via, report);
  };

  /** Wires `ws` (dialled to `here` over `via`) to the client and the machine; the handle the machine ends it with. */
  private watch(ws: WebSocketLike, here: string, via: DialTransport, report: SocketReport): SocketHandle {
    let status: number | undefined;
    let errorText = '';
    let gone = false;
    let opened = false;
    const silence = new SilenceWatch({
      heartbeatMs: () => this.host.heartbeatMs(),
      ping: () => this.host.ping(),
      lost: (silent) => {
        const reason = `no frame from the broker for ${silent} ms: connection lost`;
        if (!goneNow({ code: 1006, reason })) return;
        try {
          ws.close(4000, 'no answer'); // the lost connection's resources; its close is not waited for
        } catch {
          // abandoned either way
        }
        this.endpoints.next();
        report.dropped(1006, reason);
      },
    });
    // Never opened (refused, failed, or no answer within connectTimeoutMs: a proxy that holds upgrades): this URL's
    // next dial is SSE after a WebSocket, WebSocket after an SSE.
    const otherTransportIfNeverOpened = () => {
      if (!opened) this.fallback.neverOpened(here, via);
    };
    const goneNow = (close: LastClose) => {
      if (gone) return false;
      gone = true;
      silence.stop();
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // `ws` emits an error for a socket closed while connecting; nobody needs it now
      if (this.current?.ws === ws) this.current = undefined;
      this.host.gone(ws, close);
      return true;
    };
    ws.onopen = () => {
      opened = true;
      this.fallback.opened(here, via);
      silence.start();
      report.opened();
    };
    // Only the `ws` package tells why an upgrade failed ("Unexpected server response: 401"); browsers hide it.
    ws.onerror = (e) => {
      errorText = String((e as { message?: unknown })?.message ?? '');
      const m = /Unexpected server response: (\d{3})/.exec(errorText);
      if (m) status = Number(m[1]);
    };
    ws.onmessage = (e) => {
      silence.heard();
      if (typeof e.data === 'string') this.host.text(ws, e.data);
    };
    ws.onclose = (e) => {
      const close: LastClose = { code: e.code, reason: e.reason || errorText, ...(status !== undefined && { status }) };
      if (!goneNow(close)) return;
      let said = close.status;
      // A refused upgrade (a proxy's 403) stops the client only once SSE was tried on this URL too: the broker's own
      // refusal (an origin it does not allow) refuses the stream as well, and then the next WebSocket refusal stops it.
      if (!opened && via === 'ws' && !this.fallback.refusalIsFinal(here)) said = undefined;
      otherTransportIfNeverOpened();
      this.endpoints.next(); // lost or refused: the next dial tries the next URL (one URL: the same one)
      report.dropped(close.code, close.reason, said);
    };
    return {
      close: () => {
        // The machine ends this socket (close(), an `unavailable`, a connect timeout): report why it did.
        if (!goneNow(this.host.closingAs() ?? { code: 1000, reason: 'closed by the client' })) return;
        // An `unavailable` or a connect timeout: this node cannot serve us now; the next dial tries the next URL.
        otherTransportIfNeverOpened();
        this.endpoints.next();
        try {
          ws.close(1000);
        } catch {
          // Closing a socket still connecting may throw on some platforms; it is abandoned either way.
        }
      },
    };
  }
}

// SwitchboardClient: a connection to a Switchboard broker that stays up. Its lifecycle is an xstate machine
// (lifecycle.machine.ts); requests are promises matched by id; subscriptions survive reconnects and resume from
// their positions; publishes made while offline wait in a bounded queue; a JWT is refreshed before it expires.
// The client composes the parts that do this (dialer.ts dials, link.ts carries requests, publisher.ts and
// subscriptions.ts keep what must survive a reconnect) and owns what ties them together: the lifecycle actor, the
// frames read off the current socket, and the requests of its public API.
import { createActor, type Actor } from 'xstate';
import { DEFAULT_BACKOFF } from './backoff.js';
import { Dialer, type DialHost } from './dialer.js';
import { Emitter } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { clientLifecycleMachine, stateName, type ClientState, type LastClose } from './lifecycle.machine.js';
import { Link } from './link.js';
import { checkOptions, type ClientOptions } from './options.js';
import { toMember } from './presence.js';
import { Publisher, type PublishOptions } from './publisher.js';
import type { WebSocketConstructor, WebSocketLike } from './socket.js';
import { SseSocket, type EventSourceConstructor } from './sse-socket.js';
import type { Message, SubscribeOptions, Subscription } from './subscription.js';
import { Subscriptions } from './subscriptions.js';
import type { ClientInfo, ErrorFrame, HelloFrame, Member, PubAck, Sender, ServerFrame } from './wire.js';

export interface WhoOptions {
  topic?: string;
  limit?: number;
  cursor?: string;
}

export interface ClientEvents {
  state: ClientState;
  connected: HelloFrame;
  /** A connection that had said hello is gone: the close code and reason as they were (and the HTTP status of a refused upgrade). */
  disconnected: LastClose;
  reconnecting: { attempt: number; inMs: number; lastClose: LastClose | undefined };
  /** The client stopped for good: the close that stopped it (`close()`: 1000, "closed by the client"). */
  closed: LastClose;
  direct: { from: Sender; data: unknown };
  /** Each message once, however many subscriptions took it, as it arrives (not held for listeners added later). */
  message: Message;
  /** An error frame no request waits for (e.g. a refused `?name=`), a failed token refresh, a subscription that failed after it was subscribed. */
  error: SwitchboardError;
}

export class SwitchboardClient extends Emitter<ClientEvents> {
  /** The lifecycle actor: inspect it, or subscribe to its snapshots. */
  readonly actor: Actor<typeof clientLifecycleMachine>;
  /** The broker's `hello` on the current (or last) connection. */
  hello: HelloFrame | undefined;
  private readonly options: ClientOptions;
  private readonly dialer: Dialer;
  /** The current connection: its socket, whether it said hello, the requests in flight on it. */
  private readonly link: Link;
  private readonly publisher: Publisher;
  private readonly subscriptions: Subscriptions;
  private name: string | undefined;
  private lastState: ClientState = 'idle';
  private starting: Promise<void> | undefined;
  /** Why the client itself is closing the current socket (it then reports this close, not the socket's echo). */
  private closingAs: LastClose | undefined;

  /** Throws a `SwitchboardError` with code `bad_option` when an option is wrong (nothing is dialled then). */
  constructor(options: ClientOptions) {
    super();
    checkOptions(options);
    this.options = options;
    this.dialer = new Dialer(
      {
        url: options.url,
        WebSocket: options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket,
        EventSource: options.sseFallback === false ? undefined : (options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource),
        wsRetryMs: options.wsRetryMs,
      },
      this.dialHost,
    );
    this.name = options.name;
    this.link = new Link(() => this.options.requestTimeoutMs ?? 10_000, () => this.state);
    this.publisher = new Publisher(this.link, () => this.options.offlineQueueSize ?? 1000);
    this.subscriptions = new Subscriptions(this.link, {
      hello: () => this.hello,
      tellsMessages: () => this.listenerCount('message') > 0,
      message: (message) => this.emit('message', message),
      error: (err) => this.emit('error', err),
      unavailable: (reason) => this.unavailable(reason),
    });
    this.actor = createActor(clientLifecycleMachine, {
      input: {
        dial: this.dialer.dial,
        backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
        connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
        token: options.token,
        getToken: options.getToken,
        authorize: (token) => this.authorize(token),
        refreshFailed: (err) => this.emit('error', asError(err, 'unauthorized', 'token refresh failed')),
        ...(options.random && { random: options.random }),
      },
    });
    this.actor.subscribe((snapshot) => this.onSnapshot(snapshot.value, snapshot.context));
    this.actor.start();
    if (options.connect !== false) this.connect().catch(() => {}); // failures are reported as events and states
  }

  /** idle, authorizing, connecting, connected, reconnecting or closed. */
  get state(): ClientState {
    return stateName(this.actor.getSnapshot().value);
  }

  /** Who this client is on the current connection. */
  get me(): ClientInfo | undefined {
    return this.link.online ? this.hello?.client : undefined;
  }

  /**
   * The transport of the current connection (between connections: of the next dial): `ws`, or `sse` where the URL's
   * WebSocket could not be opened (docs/sse.md).
   */
  get transport(): 'ws' | 'sse' {
    return this.dialer.transport;
  }

  /** The URLs dialled, as checked at construction (a URL without a path has `/ws`). */
  get urls(): readonly string[] {
    return this.dialer.urls;
  }

  /** Starts connecting (once); resolves at the next `hello`, rejects if the client closes first. */
  connect(): Promise<HelloFrame> {
    if (this.state === 'connected' && this.hello) return Promise.resolve(this.hello);
    if (this.state === 'closed') return Promise.reject(new SwitchboardError('closed', 'the client is closed'));
    const hello = new Promise<HelloFrame>((resolve, reject) => {
      const offs = [
        this.once('connected', (h) => (offs.forEach((o) => o()), resolve(h))),
        this.once('closed', (c) => (offs.forEach((o) => o()), reject(new SwitchboardError('closed', closeText(c))))),
      ];
    });
    hello.catch(() => {}); // when the WebSocket cannot be loaded, connect() rejects with that reason instead
    this.starting ??= this.dialer.load().then(
      () => void this.actor.send({ type: 'CONNECT' }),
      (err: SwitchboardError) => {
        this.stop(1006, err.message);
        throw err;
      },
    );
    return this.starting.then(() => hello);
  }

  /** Sends `quit` and stops for good: pending requests and queued publishes fail with `closed`. */
  close(): void {
    this.stop(1000, 'closed by the client');
  }

  /**
   * A subscription to `filter`, not yet subscribed: attach listeners, then `await sub.subscribe()`. Throws
   * `bad_option` for a bad filter or option.
   */
  subscription<T = unknown>(filter: string, options: SubscribeOptions = {}): Subscription<T> {
    return this.subscriptions.create<T>(filter, options);
  }

  /**
   * Subscribes to `filter`: resolves with the subscription at the broker's ack, its `recovery` set. What it accepts
   * before a listener or iterator is attached waits for one (up to `bufferSize`), so attaching after the await loses
   * nothing. Rejects with the broker's error (or `bad_option`, `closed`).
   */
  subscribe<T = unknown>(filter: string, options: SubscribeOptions = {}): Promise<Subscription<T>> {
    try {
      return this.subscription<T>(filter, options).subscribe();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  publish(topic: string, data: unknown, options: PublishOptions & { ack: false }): Promise<void>;
  publish(topic: string, data: unknown, options?: PublishOptions): Promise<PubAck>;
  publish(topic: string, data: unknown, options: PublishOptions = {}): Promise<PubAck | void> {
    return this.publisher.publish(topic, data, options);
  }

  /** A direct message to a client id or name. */
  async send(to: string, data: unknown): Promise<void> {
    await this.link.request({ op: 'send', to, data });
  }

  /** Renames this client; the new name is also asked for on every reconnect. */
  async rename(name: string): Promise<string> {
    const ack = await this.link.request({ op: 'rename', name });
    const now = typeof ack.name === 'string' ? ack.name : name;
    this.renamedTo(now);
    return now;
  }

  /** This connection's name changed: asked for at every reconnect, and `me` says it (it kept the hello's name). */
  private renamedTo(name: string): void {
    this.name = name;
    if (this.hello) this.hello = { ...this.hello, client: { ...this.hello.client, name } };
  }

  /** One page of `who`; `next` is the cursor of the following page. */
  async who(options: WhoOptions = {}): Promise<{ clients: Member[]; next?: string }> {
    const ack = await this.link.request({ op: 'who', ...options });
    const clients = ((ack.clients as ClientInfo[] | undefined) ?? []).map(toMember);
    return typeof ack.next === 'string' ? { clients, next: ack.next } : { clients };
  }

  /** Every page of `who`, following `next` cursors. */
  async whoAll(topic?: string): Promise<Member[]> {
    const all: Member[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.who({ ...(topic !== undefined && { topic }), limit: 1000, ...(cursor !== undefined && { cursor }) });
      all.push(...page.clients);
      cursor = page.next;
    } while (cursor !== undefined);
    return all;
  }

  /**
   * Calls a method of the application backend (its `rpc` hook, docs/integration.md): resolves with the answer's
   * `data`; rejects with the broker's code and message (`backend_error`, `forbidden`, `unavailable`: not done;
   * `outcome_unknown`), or `timeout` after `timeoutMs` (default requestTimeoutMs: the call may still happen).
   */
  async rpc<T = unknown>(method: string, data?: unknown, options: { timeoutMs?: number } = {}): Promise<T> {
    const ms = options.timeoutMs;
    if (ms !== undefined && !(typeof ms === 'number' && ms > 0 && ms <= 2 ** 31 - 1)) throw new SwitchboardError('bad_option', `timeoutMs must be a positive number of ms, got ${String(ms)}`);
    const ack = await this.link.request({ op: 'rpc', method, ...(data !== undefined && { data }) }, ms);
    return ack.data as T;
  }

  /** Round trip time in ms. */
  async ping(): Promise<number> {
    const start = Date.now();
    await this.link.request({ op: 'ping' });
    return Date.now() - start;
  }

  /**
   * Asks the broker what a connect would get now: a plain `GET` of the URL the client dials (same path, same token):
   * `{status: 200}` or the refusal's status and reason (401, 403, 404, 409, 429, 503). A browser cannot read a
   * refused WebSocket upgrade; this can.
   */
  async diagnose(): Promise<{ status: number; error?: string }> {
    try {
      const res = await fetch(this.dialer.probe(this.actor.getSnapshot().context.token));
      const body = (await res.json().catch(() => ({}))) as { error?: unknown; message?: unknown };
      const error = typeof body.message === 'string' ? body.message : typeof body.error === 'string' ? body.error : undefined;
      return error !== undefined && res.status !== 200 ? { status: res.status, error } : { status: res.status };
    } catch (err) {
      return { status: 0, error: `unreachable: ${(err as Error).message}` };
    }
  }

  /** The token refresh of the lifecycle machine: `{op:"auth"}` on this connection, resolved at its ack. */
  private async authorize(token: string): Promise<void> {
    // Over SSE every POST carries a token the broker verifies: the fresh one, once the broker took it (the stream's
    // own expires: its POSTs were refused, the connection dropped with what they carried).
    const sse = this.link.socket instanceof SseSocket ? this.link.socket : undefined;
    sse?.refreshing(token);
    await this.link.request({ op: 'auth', token });
    sse?.useToken(token);
  }

  /** Stops for good with this close (the machine's `closed` carries it). */
  private stop(code: number, reason: string): void {
    if (this.state === 'closed') return;
    if (this.link.online) this.link.write({ op: 'quit' });
    this.closingAs = { code, reason };
    // Before the machine ends the socket (which fails what is in flight as `disconnected`): close() says `closed`.
    this.link.requests.failAll('closed', closeText(this.closingAs));
    this.actor.send({ type: 'CLOSE', code, reason });
  }

  // ---- the socket ----

  /** What the dialer asks of the client: the socket it dialled is ours; its frames and its end come here. */
  private readonly dialHost: DialHost = {
    name: () => this.name,
    dialled: (ws) => {
      this.link.socket = ws;
      this.closingAs = undefined;
    },
    text: (ws, text) => this.onText(ws, text),
    gone: (ws, close) => this.socketGone(ws, close),
    closingAs: () => this.closingAs,
    heartbeatMs: () => this.hello?.heartbeatMs ?? 25_000,
    ping: () => void (this.link.online && this.link.sendText('{"op":"ping"}')),
  };

  private socketGone(ws: WebSocketLike, close: LastClose): void {
    if (this.link.socket !== ws) return;
    this.link.socket = undefined;
    const wasOnline = this.link.online;
    this.link.online = false;
    this.link.requests.failAll('disconnected', 'the connection dropped before the reply');
    this.subscriptions.disconnected(this.hello?.client.id);
    if (wasOnline) this.emit('disconnected', close);
  }

  private onText(ws: WebSocketLike, text: string): void {
    if (ws !== this.link.socket) return;
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      this.emit('error', new SwitchboardError('bad_frame', 'the broker sent a frame that is not JSON'));
      return;
    }
    switch (frame.op) {
      case 'hello':
        return this.onHello(frame);
      case 'msg':
        return this.subscriptions.message(frame);
      case 'event':
        if (this.hello && frame.event === 'rename' && frame.client.id === this.hello.client.id) this.renamedTo(frame.client.name);
        return this.subscriptions.presenceEvent(frame);
      case 'direct':
        this.emit('direct', { from: frame.from, data: frame.data });
        return;
      case 'ack':
      case 'pong':
        this.link.requests.settle(frame);
        return;
      case 'error':
        return this.onError(frame);
    }
  }

  private onHello(hello: HelloFrame): void {
    this.hello = hello;
    this.link.online = true;
    this.actor.send({ type: 'HELLO' });
    // The subscriptions held before `connected`: one made by a `connected` listener is sent once, by start().
    const resubscribe = this.subscriptions.resubscriber();
    this.emit('connected', hello);
    resubscribe();
    // Queued publishes go after the resubscribes, so our own subscriptions see them.
    this.publisher.flush();
  }

  private onError(frame: ErrorFrame): void {
    if (this.link.requests.settle(frame)) return;
    if (frame.code === 'unavailable') return this.unavailable(frame.message);
    // The token expired: with getToken the machine refreshes it at once; without, the app must know.
    if (frame.code === 'token_expired' && this.options.getToken) return void this.actor.send({ type: 'TOKEN_EXPIRED' });
    const err = new SwitchboardError(frame.code, frame.message);
    // The broker removed a subscription (a refreshed token no longer allows its filter): it fails, as a refused one.
    if (frame.id === undefined && typeof frame.topic === 'string') this.subscriptions.removed(frame.topic, err);
    this.emit('error', err);
  }

  /** The broker cannot serve us now (`unavailable`): the machine ends this connection and reconnects, maybe elsewhere. */
  private unavailable(reason: string): void {
    this.closingAs = { code: 1013, reason };
    this.actor.send({ type: 'UNAVAILABLE', reason });
  }

  private onSnapshot(value: unknown, context: { attempt: number; retryInMs: number; lastClose: LastClose | undefined }): void {
    const state = stateName(value);
    if (state === this.lastState) return;
    this.lastState = state;
    const { attempt, retryInMs, lastClose } = context;
    this.emit('state', state);
    if (state === 'reconnecting') this.emit('reconnecting', { attempt, inMs: retryInMs, lastClose });
    if (state === 'closed') this.shutdown(lastClose ?? this.closingAs ?? { code: 1000, reason: 'closed by the client' });
  }

  private shutdown(lastClose: LastClose): void {
    this.link.online = false;
    this.link.requests.failAll('closed', closeText(lastClose));
    this.publisher.failAll(closeText(lastClose));
    this.subscriptions.closeAll(closeText(lastClose));
    this.emit('closed', lastClose);
  }
}

function closeText(c: LastClose): string {
  return `closed (${c.status !== undefined ? `HTTP ${c.status}` : c.code}${c.reason ? ` ${c.reason}` : ''})`;
}

function asError(err: unknown, code: string, context: string): SwitchboardError {
  if (err instanceof SwitchboardError) return err;
  return new SwitchboardError(code, `${context}: ${err instanceof Error ? err.message : String(err)}`);
}

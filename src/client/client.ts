// SwitchboardClient: a connection to a Switchboard broker that stays up. Its lifecycle is an xstate machine
// (lifecycle.machine.ts); requests are promises matched by id; subscriptions survive reconnects and resume from
// their positions; publishes made while offline wait in a bounded queue.
import { createActor, type Actor } from 'xstate';
import { DEFAULT_BACKOFF, type Backoff } from './backoff.js';
import { Emitter } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { clientLifecycleMachine, stateName, type ClientState, type Dial, type LastClose } from './lifecycle.machine.js';
import { matches } from './positions.js';
import { PendingRequests } from './requests.js';
import { Subscription, type Message, type SubscribeOptions } from './subscription.js';
import type { AckFrame, ClientInfo, ErrorFrame, HelloFrame, Member, PubAck, Sender, ServerFrame, SubAck } from './wire.js';
import { toMember } from './presence.js';

/** The part of a WebSocket the client uses: the browser's, Node 22's and the `ws` package's all fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /**
   * The broker's WebSocket endpoint, e.g. `ws://127.0.0.1:8080/ws` (or `/ws` relative to the page in a browser).
   * Several (the nodes of a cluster): the first is dialled first; after a connection is lost or a dial fails, the
   * next one in turn. Subscriptions resume on whichever node answers (their positions are the cluster's).
   */
  url: string | readonly string[];
  /** Sent as `?token=`; with `getToken` it is asked again after a refused connect or when a JWT expires. */
  token?: string;
  getToken?: () => string | Promise<string>;
  /** Asked at every connect (`?name=`); a successful rename replaces it. */
  name?: string;
  /** The WebSocket class; default `globalThis.WebSocket`, else the `ws` package (Node 20). */
  WebSocket?: WebSocketConstructor;
  backoff?: Partial<Backoff>;
  /** A request without a reply after this long fails with `timeout` (default 10 s). */
  requestTimeoutMs?: number;
  /** A connect without `hello` after this long is retried (default 10 s). */
  connectTimeoutMs?: number;
  /** Publishes kept while offline (default 1000); beyond it publish fails with `queue_full`. */
  offlineQueueSize?: number;
  /** Connect at construction (default true). */
  connect?: boolean;
  /** Random source of the backoff jitter, [0, 1). */
  random?: () => number;
}

export interface PublishOptions {
  /** Wait for the broker's ack (default true). false: a notification, no id, no reply. */
  ack?: boolean;
  /** false: not delivered back to this client's own subscriptions. */
  echo?: boolean;
}

export interface WhoOptions {
  topic?: string;
  limit?: number;
  cursor?: string;
}

export interface ClientEvents {
  state: ClientState;
  connected: HelloFrame;
  disconnected: LastClose;
  reconnecting: { attempt: number; inMs: number; lastClose: LastClose | undefined };
  closed: LastClose | undefined;
  direct: { from: Sender; data: unknown };
  /** Each message once, however many subscriptions took it (overlapping filters each get their own copy). */
  message: Message;
  /** An error frame no request waits for (e.g. a refused `?name=`), or a subscription's refusal. */
  error: SwitchboardError;
}

interface Queued {
  frame: Record<string, unknown>;
  ack: boolean;
  resolve: (ack: PubAck | undefined) => void;
  reject: (err: SwitchboardError) => void;
}

const OPEN = 1;

export class SwitchboardClient extends Emitter<ClientEvents> {
  /** The lifecycle actor: inspect it, or subscribe to its snapshots. */
  readonly actor: Actor<typeof clientLifecycleMachine>;
  /** The broker's `hello` on the current (or last) connection. */
  hello: HelloFrame | undefined;
  private readonly options: ClientOptions;
  private readonly requests: PendingRequests;
  private readonly subs = new Set<Subscription<unknown>>();
  private readonly queue: Queued[] = [];
  /** The dialled socket; `online` once it said hello. */
  private socket: WebSocketLike | undefined;
  private online = false;
  private WebSocketClass: WebSocketConstructor | undefined;
  private name: string | undefined;
  private lastState: ClientState = 'idle';
  /** Our own ids on earlier connections: presence re-syncs pass over them quietly. */
  private readonly ownIds = new Set<string>();
  private starting: Promise<void> | undefined;

  constructor(options: ClientOptions) {
    super();
    this.options = options;
    this.name = options.name;
    this.WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.requests = new PendingRequests(() => this.options.requestTimeoutMs ?? 10_000);
    this.actor = createActor(clientLifecycleMachine, {
      input: {
        dial: this.dial,
        backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
        connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
        token: options.token,
        getToken: options.getToken,
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
    return this.online ? this.hello?.client : undefined;
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
    this.starting ??= this.loadWebSocket().then(
      () => void this.actor.send({ type: 'CONNECT' }),
      (err: unknown) => {
        this.actor.send({ type: 'CLOSE' });
        throw err;
      },
    );
    return Promise.all([hello, this.starting]).then(([h]) => h);
  }

  /** Sends `quit` and stops for good: pending requests and queued publishes fail with `closed`. */
  close(): void {
    if (this.state === 'closed') return;
    if (this.online) this.write({ op: 'quit' });
    this.actor.send({ type: 'CLOSE' });
  }

  subscribe<T = unknown>(filter: string, options: SubscribeOptions = {}): Promise<Subscription<T>> {
    if (this.state === 'closed') return Promise.reject(new SwitchboardError('closed', 'the client is closed'));
    const sub = new Subscription<T>({ unsubscribe: (s) => this.unsubscribe(s) }, filter, options);
    this.subs.add(sub as Subscription<unknown>);
    if (this.online) this.sendSub(sub as Subscription<unknown>);
    return sub.ready;
  }

  publish(topic: string, data: unknown, options: PublishOptions & { ack: false }): Promise<void>;
  publish(topic: string, data: unknown, options?: PublishOptions): Promise<PubAck>;
  publish(topic: string, data: unknown, options: PublishOptions = {}): Promise<PubAck | void> {
    const ack = options.ack !== false;
    const frame = { op: 'pub', topic, data, ...(options.echo === false && { echo: false }) };
    if (this.state === 'closed') return Promise.reject(new SwitchboardError('closed', 'the client is closed'));
    if (this.online && this.queue.length === 0) return this.sendPub(frame, ack);
    const bound = this.options.offlineQueueSize ?? 1000;
    if (this.queue.length >= bound) {
      return Promise.reject(new SwitchboardError('queue_full', `offline queue full (${bound} publishes waiting for a connection)`));
    }
    return new Promise<PubAck | undefined>((resolve, reject) => this.queue.push({ frame, ack, resolve, reject })).then((a) => a);
  }

  /** A direct message to a client id or name. */
  async send(to: string, data: unknown): Promise<void> {
    await this.request({ op: 'send', to, data });
  }

  /** Renames this client; the new name is also asked for on every reconnect. */
  async rename(name: string): Promise<string> {
    const ack = await this.request({ op: 'rename', name });
    this.name = typeof ack.name === 'string' ? ack.name : name;
    return this.name;
  }

  /** One page of `who`; `next` is the cursor of the following page. */
  async who(options: WhoOptions = {}): Promise<{ clients: Member[]; next?: string }> {
    const ack = await this.request({ op: 'who', ...options });
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

  /** Round trip time in ms. */
  async ping(): Promise<number> {
    const start = Date.now();
    await this.request({ op: 'ping' });
    return Date.now() - start;
  }

  /**
   * Asks the broker what a connect would get now (`GET /ws` with the same token): `{status: 200}` or the refusal's
   * status and reason (401, 403, 409, 429, 503). A browser cannot read a refused WebSocket upgrade; this can.
   */
  async diagnose(): Promise<{ status: number; error?: string }> {
    const url = new URL(this.urlFor(this.actor.getSnapshot().context.token));
    url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
    url.pathname = '/ws';
    url.searchParams.delete('name');
    try {
      const res = await fetch(url);
      const body = (await res.json().catch(() => ({}))) as { error?: unknown };
      return typeof body.error === 'string' ? { status: res.status, error: body.error } : { status: res.status };
    } catch (err) {
      return { status: 0, error: `unreachable: ${(err as Error).message}` };
    }
  }

  // ---- requests ----

  private request(frame: Record<string, unknown>): Promise<AckFrame> {
    if (!this.online) {
      const why = this.state === 'closed' ? 'closed' : 'disconnected';
      return Promise.reject(new SwitchboardError(why, `${String(frame.op)}: not connected (${this.state})`));
    }
    const { id, reply } = this.requests.open(String(frame.op));
    this.write({ ...frame, id });
    return reply as Promise<AckFrame>;
  }

  private sendPub(frame: Record<string, unknown>, ack: boolean): Promise<PubAck | void> {
    if (!ack) {
      this.write(frame);
      return Promise.resolve();
    }
    return this.request(frame).then((a) => ({ seq: a.seq as number, delivered: a.delivered as number, ...(typeof a.epoch === 'string' && { epoch: a.epoch }) }));
  }

  private write(frame: Record<string, unknown>): void {
    const ws = this.socket;
    if (ws && ws.readyState === OPEN) ws.send(JSON.stringify(frame));
  }

  // ---- subscriptions ----

  private sendSub(sub: Subscription<unknown>): void {
    const fields = sub.subFrame(this.hello?.server.protocol ?? 2);
    const ws = this.socket;
    const id = this.requests.expect('sub', {
      ok: (ack) => {
        if (this.socket !== ws || !this.subs.has(sub)) return;
        sub.acked(ack as SubAck, fields);
        if (sub.wantsPresence) this.syncPresence(sub);
      },
      fail: (err) => {
        if (err.code === 'disconnected') return; // resubscribes on the next connection
        if (err.code === 'timeout' && this.socket === ws) return this.sendSub(sub);
        this.subs.delete(sub);
        sub.refused(err);
        if (err.code !== 'closed') this.emit('error', err);
      },
    });
    this.write({ op: 'sub', id, ...fields });
  }

  private async unsubscribe(sub: Subscription<unknown>): Promise<void> {
    if (!this.subs.delete(sub)) return;
    const wasLive = sub.state === 'subscribed';
    sub.end();
    // Another subscription on the same filter keeps the broker's subscription.
    if (!wasLive || !this.online || [...this.subs].some((s) => s.filter === sub.filter)) return;
    await this.request({ op: 'unsub', topic: sub.filter }).catch((err: SwitchboardError) => {
      if (err.code !== 'disconnected' && err.code !== 'closed') throw err;
    });
  }

  /** A fresh `who` of the filter, page by page; events before its first page are already in it. */
  private syncPresence(sub: Subscription<unknown>, cursor?: string): void {
    const ws = this.socket;
    if (cursor === undefined) sub.syncStarted();
    const id = this.requests.expect('who', {
      ok: (reply) => {
        const ack = reply as AckFrame;
        if (this.socket !== ws) return;
        const next = typeof ack.next === 'string' ? ack.next : undefined;
        const quiet = new Set(this.ownIds);
        if (this.hello) quiet.add(this.hello.client.id);
        sub.syncPage((ack.clients as ClientInfo[] | undefined) ?? [], next === undefined, quiet);
        if (next !== undefined) this.syncPresence(sub, next);
      },
      fail: (err) => {
        if (err.code !== 'disconnected' && err.code !== 'closed') sub.syncFailed(err);
      },
    });
    this.write({ op: 'who', id, topic: sub.filter, limit: 1000, ...(cursor !== undefined && { cursor }) });
  }

  // ---- the socket ----

  private async loadWebSocket(): Promise<void> {
    if (this.WebSocketClass) return;
    // Node 20 has no global WebSocket: the `ws` package (kept out of browser bundles as an external import).
    const mod = (await import('ws')) as unknown as { default: WebSocketConstructor };
    this.WebSocketClass = mod.default;
  }

  /** Which of several URLs the next dial uses; it moves on whenever a connection is lost or a dial fails. */
  private urlTurn = 0;

  private urlFor(token: string | undefined): string {
    const base = (globalThis as { location?: { href: string } }).location?.href;
    const urls = typeof this.options.url === 'string' ? [this.options.url] : this.options.url;
    const url = new URL(urls[this.urlTurn % urls.length]!, base);
    if (url.protocol === 'http:') url.protocol = 'ws:';
    if (url.protocol === 'https:') url.protocol = 'wss:';
    if (token !== undefined) url.searchParams.set('token', token);
    if (this.name !== undefined) url.searchParams.set('name', this.name);
    return url.toString();
  }

  private readonly dial: Dial = (token, report) => {
    const ws = new this.WebSocketClass!(this.urlFor(token));
    this.socket = ws;
    let status: number | undefined;
    let errorText = '';
    let gone = false;
    const goneNow = () => {
      if (gone) return false;
      gone = true;
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // `ws` emits an error for a socket closed while connecting; nobody needs it now
      this.socketGone(ws);
      return true;
    };
    ws.onopen = () => report.opened();
    // Only the `ws` package tells why an upgrade failed ("Unexpected server response: 401"); browsers hide it.
    ws.onerror = (e) => {
      errorText = String((e as { message?: unknown })?.message ?? '');
      const m = /Unexpected server response: (\d{3})/.exec(errorText);
      if (m) status = Number(m[1]);
    };
    ws.onmessage = (e) => {
      if (typeof e.data === 'string') this.onText(ws, e.data);
    };
    ws.onclose = (e) => {
      if (!goneNow()) return;
      this.urlTurn++; // lost or refused: the next dial tries the next URL (one URL: the same one)
      report.dropped(e.code, e.reason || errorText, status);
    };
    return {
      close: () => {
        if (!goneNow()) return;
        try {
          ws.close(1000);
        } catch {
          // Closing a socket still connecting may throw on some platforms; it is abandoned either way.
        }
      },
    };
  };

  private socketGone(ws: WebSocketLike): void {
    if (this.socket !== ws) return;
    this.socket = undefined;
    const wasOnline = this.online;
    this.online = false;
    if (this.hello) this.ownIds.add(this.hello.client.id);
    this.requests.failAll('disconnected', 'the connection dropped before the reply');
    for (const sub of this.subs) sub.disconnected();
    if (wasOnline) this.emit('disconnected', this.actor.getSnapshot().context.lastClose ?? { code: 1006, reason: '' });
  }

  private onText(ws: WebSocketLike, text: string): void {
    if (ws !== this.socket) return;
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
      case 'msg': {
        let fresh = false;
        for (const sub of this.subs) if (matches(sub.filter, frame.topic) && sub.deliver(frame)) fresh = true;
        if (fresh) this.emit('message', { topic: frame.topic, seq: frame.seq, epoch: frame.epoch, data: frame.data, from: frame.from, ts: frame.ts });
        return;
      }
      case 'event':
        if (this.hello && frame.event === 'rename' && frame.client.id === this.hello.client.id) this.name = frame.client.name;
        for (const sub of this.subs) if (sub.wantsPresence && sub.filter === frame.topic) sub.presenceEvent(frame);
        return;
      case 'direct':
        this.emit('direct', { from: frame.from, data: frame.data });
        return;
      case 'ack':
      case 'pong':
        this.requests.settle(frame);
        return;
      case 'error':
        return this.onError(frame);
    }
  }

  private onHello(hello: HelloFrame): void {
    this.hello = hello;
    this.online = true;
    this.actor.send({ type: 'HELLO' });
    this.emit('connected', hello);
    for (const sub of this.subs) this.sendSub(sub);
    // Queued publishes go after the resubscribes, so our own subscriptions see them.
    for (const q of this.queue.splice(0)) this.sendPub(q.frame, q.ack).then((a) => q.resolve(a ?? undefined), q.reject);
  }

  private onError(frame: ErrorFrame): void {
    const settled = this.requests.settle(frame);
    if (frame.code === 'unavailable') {
      this.actor.send({ type: 'UNAVAILABLE', reason: frame.message });
      return;
    }
    if (!settled) this.emit('error', new SwitchboardError(frame.code, frame.message));
  }

  private onSnapshot(value: unknown, context: { attempt: number; retryInMs: number; lastClose: LastClose | undefined }): void {
    const state = stateName(value);
    if (state === this.lastState) return;
    this.lastState = state;
    const { attempt, retryInMs, lastClose } = context;
    this.emit('state', state);
    if (state === 'reconnecting') this.emit('reconnecting', { attempt, inMs: retryInMs, lastClose });
    if (state === 'closed') this.shutdown(lastClose);
  }

  private shutdown(lastClose: LastClose | undefined): void {
    this.online = false;
    this.requests.failAll('closed', closeText(lastClose));
    for (const q of this.queue.splice(0)) q.reject(new SwitchboardError('closed', `publish not sent: ${closeText(lastClose)}`));
    for (const sub of this.subs) sub.end();
    this.subs.clear();
    this.emit('closed', lastClose);
  }
}

function closeText(c: LastClose | undefined): string {
  if (!c) return 'the client was closed';
  return `closed (${c.status !== undefined ? `HTTP ${c.status}` : c.code}${c.reason ? ` ${c.reason}` : ''})`;
}

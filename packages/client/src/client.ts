// SwitchboardClient: a connection to a Switchboard broker that stays up. Its lifecycle is an xstate machine
// (lifecycle.machine.ts); requests are promises matched by id; subscriptions survive reconnects and resume from
// their positions; publishes made while offline wait in a bounded queue; a JWT is refreshed before it expires.
import { createActor, type Actor } from 'xstate';
import { DEFAULT_BACKOFF, type Backoff } from './backoff.js';
import { Dialer, type DialHost } from './dialer.js';
import { Emitter } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { clientLifecycleMachine, stateName, type ClientState, type LastClose } from './lifecycle.machine.js';
import { toMember } from './presence.js';
import { Link } from './link.js';
import { Publisher, type PublishOptions } from './publisher.js';
import { checkSubscribeOptions, Subscription, withinRun, type Message, type Run, type SubscribeOptions, type SubscriptionHost } from './subscription.js';
import { matches } from './topics.js';
import type { AckFrame, ClientInfo, ErrorFrame, HelloFrame, Member, PubAck, Sender, ServerFrame, SubAck } from './wire.js';
import { SseSocket, type EventSourceConstructor } from './sse-socket.js';
import type { WebSocketConstructor, WebSocketLike } from './socket.js';
import { checkOptions } from './options.js';

/** Topics whose messages the client remembers for subscriptions that ended (`departed`), at most. */
const DEPARTED_MAX = 10_000;

export interface ClientOptions {
  /**
   * The broker's WebSocket endpoint, e.g. `ws://127.0.0.1:8080/ws` (or `/ws` relative to the page in a browser;
   * without a path, `/ws`). Several (the nodes of a cluster): the first is dialled first; after a connection is
   * lost or a dial fails, the next one in turn. Subscriptions resume on whichever node answers.
   */
  url: string | readonly string[];
  /** Sent as `?token=`. */
  token?: string;
  /** Asked for a token before connecting when there is none or it expired, after a refused connect, and before a JWT expires. */
  getToken?: () => string | Promise<string>;
  /** Asked at every connect (`?name=`); a successful rename replaces it. */
  name?: string;
  /** The WebSocket class; default `globalThis.WebSocket`, else the `ws` package (Node 20). */
  WebSocket?: WebSocketConstructor;
  /**
   * When a WebSocket cannot be opened (a proxy that blocks upgrades), dial that URL's Server-Sent Events transport
   * instead (`/sse`, docs/sse.md), while it works and for 5 minutes at most, then WebSocket again (default true).
   * Each URL falls back on its own. false: WebSocket only.
   */
  sseFallback?: boolean;
  /** The EventSource class for the fallback; default `globalThis.EventSource` (browsers). Without one there is no fallback. */
  EventSource?: EventSourceConstructor | undefined;
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

/** Our ids on earlier connections that presence re-syncs pass over (the most recent). */
const OWN_IDS_KEPT = 16;

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
  private readonly subs = new Set<Subscription<unknown>>();
  /**
   * What subscriptions that ended had taken, per topic a remaining subscription still matches: a replay of a newer,
   * overlapping subscription brings those messages again, and the `message` event told them already.
   */
  private readonly departed = new Map<string, Run>();
  /** Subscriptions made by subscription() whose subscribe() was not called yet: close() ends them too. */
  private readonly unstarted = new Set<Subscription<unknown>>();
  private name: string | undefined;
  private lastState: ClientState = 'idle';
  /** Our own ids on earlier connections: presence re-syncs pass over them quietly. */
  private readonly ownIds = new Set<string>();
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
      },
      this.dialHost,
    );
    this.name = options.name;
    this.link = new Link(() => this.options.requestTimeoutMs ?? 10_000, () => this.state);
    this.publisher = new Publisher(this.link, () => this.options.offlineQueueSize ?? 1000);
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
    const { positions } = checkSubscribeOptions(filter, options);
    const sub = new Subscription<T>(this.host, filter, options, positions);
    // Ended by close() too: an iterator taken before subscribe() must not wait for ever on a closed client.
    if (this.state === 'closed') sub.end(new SwitchboardError('closed', 'the client is closed'));
    else this.unstarted.add(sub as Subscription<unknown>);
    return sub;
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

  // ---- subscriptions ----

  /** What subscriptions ask of their client. */
  private readonly host: SubscriptionHost = {
    start: (sub) => {
      this.unstarted.delete(sub);
      if (this.state === 'closed') return sub.end(new SwitchboardError('closed', 'the client is closed'));
      this.subs.add(sub);
      if (this.link.online) this.sendSub(sub);
    },
    unsubscribe: (sub) => this.unsubscribe(sub),
    failed: (sub, err) => {
      this.forget(sub);
      this.emit('error', err);
    },
  };

  private sendSub(sub: Subscription<unknown>): void {
    const own = sub.subFrame(this.hello?.server.protocol ?? 2);
    // The broker keeps one subscription per filter and connection, and a `sub` without `presence` turns its presence
    // off: while any subscription of this filter wants presence, every `sub` of it asks for it.
    const watched = !own.presence && [...this.subs].some((s) => s !== sub && s.filter === sub.filter && s.wantsPresence);
    const fields = watched ? { ...own, presence: true as const } : own;
    const ws = this.link.socket;
    const id = this.link.requests.expect('sub', {
      ok: (ack) => {
        if (this.link.socket !== ws || !this.subs.has(sub)) return;
        sub.acked(ack as SubAck, fields);
        if (sub.wantsPresence) this.syncPresence(sub);
      },
      fail: (err) => {
        if (err.code === 'disconnected') return; // resubscribes on the next connection
        // Sent again only while it stands: one unsubscribed meanwhile had its `unsub` sent after it, the last word.
        if (err.code === 'timeout' && this.link.socket === ws) return void (this.subs.has(sub) && this.sendSub(sub));
        if (err.code === 'unavailable') {
          // The broker did not act (say a cluster node whose Redis is down): not a refusal of this subscription. It
          // stays, and comes back on the next connection, as after an `unavailable` error of any other kind.
          if (this.link.socket === ws && this.link.online) {
            this.closingAs = { code: 1013, reason: err.message };
            this.actor.send({ type: 'UNAVAILABLE', reason: err.message });
          }
          return;
        }
        this.drop(sub);
        if (err.code === 'closed') return sub.end(err);
        // The first refusal rejects subscribe()'s promise; a later one (a resubscribe) has nobody waiting.
        if (!sub.refused(err)) this.emit('error', err);
      },
    });
    this.link.write({ op: 'sub', id, ...fields });
  }

  private async unsubscribe(sub: Subscription<unknown>): Promise<void> {
    // Held at the broker, or about to be: a `sub` sent on this connection and not answered yet is taken before the
    // `unsub` that follows it (one connection's requests are served in order).
    const atBroker = sub.state === 'subscribed' || (sub.state === 'subscribing' && this.link.online);
    if (!this.drop(sub)) return (this.unstarted.delete(sub), sub.end());
    sub.end();
    if (atBroker) await this.unsubAtBroker(sub.filter);
  }

  /** A subscription that failed on its own (`buffer_overflow`) is dropped at the broker too. */
  private forget(sub: Subscription<unknown>): void {
    if (!this.drop(sub)) return;
    this.unsubAtBroker(sub.filter).catch((err: SwitchboardError) => this.emit('error', err));
  }

  /**
   * Removes `sub` from the client's subscriptions (false: it was not one), keeping what it took of topics a remaining
   * subscription matches (`departed`); what no remaining subscription matches is forgotten.
   */
  private drop(sub: Subscription<unknown>): boolean {
    if (!this.subs.delete(sub)) return false;
    const filters = [...this.subs].map((s) => s.filter);
    const matched = (topic: string) => filters.some((f) => matches(f, topic));
    for (const topic of sub.tookTopics()) {
      const run = sub.run(topic);
      if (!run || !matched(topic)) continue;
      const kept = this.departed.get(topic);
      // Two runs of one epoch that touch make one; otherwise the later run is kept. Set last: the newest go last.
      this.departed.delete(topic);
      if (kept && kept.epoch === run.epoch && run.first <= kept.last + 1 && kept.first <= run.last + 1) {
        this.departed.set(topic, { epoch: run.epoch, first: Math.min(kept.first, run.first), last: Math.max(kept.last, run.last) });
      } else this.departed.set(topic, kept && kept.epoch === run.epoch && kept.last > run.last ? kept : run);
    }
    for (const topic of this.departed.keys()) if (!matched(topic)) this.departed.delete(topic);
    // Bounded: past DEPARTED_MAX topics the oldest record goes (a replay of it could then be told twice, never lost).
    for (const topic of this.departed.keys()) {
      if (this.departed.size <= DEPARTED_MAX) break;
      this.departed.delete(topic);
    }
    return true;
  }

  private async unsubAtBroker(filter: string): Promise<void> {
    // Another subscription on the same filter keeps the broker's subscription.
    if (!this.link.online || [...this.subs].some((s) => s.filter === filter)) return;
    await this.link.request({ op: 'unsub', topic: filter }).catch((err: SwitchboardError) => {
      if (err.code !== 'disconnected' && err.code !== 'closed') throw err;
    });
  }

  /** A fresh `who` of the filter, page by page; events before its first page are already in it. */
  private syncPresence(sub: Subscription<unknown>, cursor?: string): void {
    const ws = this.link.socket;
    if (cursor === undefined) sub.syncStarted();
    const id = this.link.requests.expect('who', {
      ok: (reply) => {
        const ack = reply as AckFrame;
        if (this.link.socket !== ws) return;
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
    this.link.write({ op: 'who', id, topic: sub.filter, limit: 1000, ...(cursor !== undefined && { cursor }) });
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
    if (this.hello) {
      this.ownIds.add(this.hello.client.id);
      // Only recent ones can still be listed (the broker ends a lost connection within its heartbeat timeout): a
      // client that reconnects for months keeps a few, not one per connection it ever had.
      if (this.ownIds.size > OWN_IDS_KEPT) this.ownIds.delete(this.ownIds.values().next().value!);
    }
    this.link.requests.failAll('disconnected', 'the connection dropped before the reply');
    for (const sub of this.subs) sub.disconnected();
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
      case 'msg': {
        // One object per frame, shared by every subscription that takes it; the client's `message` event tells it once.
        const message: Message = { topic: frame.topic, seq: frame.seq, epoch: frame.epoch, data: frame.data, from: frame.from, ts: frame.ts };
        const told = this.listenerCount('message') > 0;
        let fresh = false;
        // A copy another subscription took earlier (the replay of a newer, overlapping one) was told then, also by
        // one that has ended since.
        let toldBefore = withinRun(this.departed.get(frame.topic), message);
        for (const sub of this.subs) {
          if (!matches(sub.filter, frame.topic)) continue;
          if (sub.accept(message, told)) fresh = true;
          else if (sub.hadEarlier(message)) toldBefore = true;
        }
        if (fresh && told && !toldBefore) this.emit('message', message);
        return;
      }
      case 'event':
        if (this.hello && frame.event === 'rename' && frame.client.id === this.hello.client.id) this.renamedTo(frame.client.name);
        for (const sub of this.subs) if (sub.wantsPresence && sub.filter === frame.topic) sub.presenceEvent(frame);
        return;
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
    const held = [...this.subs];
    this.emit('connected', hello);
    for (const sub of held) if (this.subs.has(sub)) this.sendSub(sub);
    // Queued publishes go after the resubscribes, so our own subscriptions see them.
    this.publisher.flush();
  }

  private onError(frame: ErrorFrame): void {
    if (this.link.requests.settle(frame)) return;
    if (frame.code === 'unavailable') {
      this.closingAs = { code: 1013, reason: frame.message };
      this.actor.send({ type: 'UNAVAILABLE', reason: frame.message });
      return;
    }
    // The token expired: with getToken the machine refreshes it at once; without, the app must know.
    if (frame.code === 'token_expired' && this.options.getToken) return void this.actor.send({ type: 'TOKEN_EXPIRED' });
    const err = new SwitchboardError(frame.code, frame.message);
    // The broker removed a subscription (a refreshed token no longer allows its filter): it fails, as a refused one.
    if (frame.id === undefined && typeof frame.topic === 'string') {
      for (const sub of [...this.subs]) {
        if (sub.filter !== frame.topic) continue;
        this.drop(sub);
        sub.refused(err);
      }
    }
    this.emit('error', err);
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
    for (const sub of [...this.subs, ...this.unstarted]) sub.end(new SwitchboardError('closed', closeText(lastClose)));
    this.subs.clear();
    this.unstarted.clear();
    this.departed.clear();
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

// Hooks: the application backend taking part (docs/integration.md). One per process, built from --hook-url, the
// per-kind --hook-<kind>-url and --hooks: asks the backend about connects, subscribes, publishes and rpc calls,
// caches answers it gave a lifetime, and turns every answer or failure into a verdict the connection applies.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Grant } from '../auth/grant.js';
import type { ClientFrame, FrameOf, Transport } from '../protocol/frames.js';
import { ProtocolError } from '../protocol/errors.js';
import { HookCache } from './cache.js';
import { HookClient, type HookKind, type HookResult } from './client.js';
import { Webhooks } from './webhooks.js';
import { ClientEvents } from './events.js';
import { cacheLifetime, connectFailure, connectVerdict, failureError, publishVerdict, rpcVerdict, subscribeVerdict, type ConnectVerdict } from './verdicts.js';

/** A connection as the backend sees it. */
export interface HookClientInfo {
  id: string;
  name: string;
  transport: Transport;
  addr: string;
  meta?: Record<string, unknown> | undefined;
}

/** What the connect hook is told about a connection being opened. */
export interface ConnectRequest {
  transport: Transport;
  addr: string;
  /** The name asked for (`?name=`), the filters asked for (path, `topics=`, the TCP room). */
  name: string | undefined;
  topics: string[];
  headers: { cookie?: string | undefined; authorization?: string | undefined; origin?: string | undefined };
  /** The verified token's grant, when auth is on. */
  token: Grant | undefined;
}

/** Frame kinds that wait for the backend, by op. */
type GatedOp = 'sub' | 'pub' | 'rpc';
const KIND_OF_OP: Record<GatedOp, HookKind> = { sub: 'subscribe', pub: 'publish', rpc: 'rpc' };

export type SubscribeOutcome = { data: unknown; hasData: boolean } | ProtocolError;
export type PublishOutcome = { data: unknown; replaced: boolean } | ProtocolError;
export type RpcOutcome = { data: unknown } | ProtocolError;

/** The kinds given their own URL (--hook-connect-url, …): they replace <--hook-url>/<kind>. */
function hookUrls(config: Config): Partial<Record<HookKind, string | undefined>> {
  return { connect: config.hookConnectUrl, subscribe: config.hookSubscribeUrl, publish: config.hookPublishUrl, rpc: config.hookRpcUrl, events: config.hookEventsUrl };
}

export class Hooks {
  readonly client: HookClient;
  private readonly on: ReadonlySet<HookKind>;
  private readonly cache: HookCache;
  /** Webhook delivery and the connection events feeding it, when `events` is in --hooks. */
  readonly webhooks: Webhooks | undefined;
  readonly events: ClientEvents | undefined;

  constructor(
    readonly config: Config,
    private readonly log?: Logger,
  ) {
    this.client = new HookClient({
      baseUrl: config.hookUrl,
      urls: hookUrls(config),
      secret: config.hookSecret,
      timeoutMs: config.hookTimeoutMs,
      maxInflight: config.hookMaxInflight,
      breakerFailures: config.hookBreakerFailures,
      breakerMs: config.hookBreakerMs,
    });
    // A kind named by --hooks is on when it has somewhere to go: --hook-url, or its own --hook-<kind>-url.
    this.on = new Set((config.hooks.split(',').map((k) => k.trim()) as HookKind[]).filter((k) => this.client.reaches(k)));
    this.cache = new HookCache(config.hookCacheEntries);
    if (this.on.has('subscribe') && !this.on.has('connect')) {
      log?.warn({ hooks: [...this.on].join(',') }, "the subscribe hook is on and the connect hook is not: the subscriptions a client asks for at connect (/ws/<topic>, ?topics=, the TCP room, an SSE stream's Last-Event-ID) are held to its token's grant only, not asked of the backend; add connect to --hooks to vet them");
    }
    if (this.on.has('events')) {
      this.webhooks = new Webhooks(this.client, { maxQueue: config.webhookQueue, batch: config.webhookBatch, retryMs: config.webhookRetryMs }, log);
      this.events = new ClientEvents(this.webhooks);
    }
  }

  /** The hooks of --hook-url and the per-kind URLs, or undefined when no backend is configured. */
  static fromConfig(config: Config, log?: Logger): Hooks | undefined {
    const own = Object.values(hookUrls(config)).some((u) => u !== undefined);
    return config.hookUrl === undefined && !own ? undefined : new Hooks(config, log);
  }

  has(kind: HookKind): boolean {
    return this.on.has(kind);
  }

  /** Whether any request of a connection waits for the backend (a connection then gets a HookGate). */
  get gatesRequests(): boolean {
    return this.on.has('subscribe') || this.on.has('publish') || this.on.has('rpc');
  }

  /** The hook a frame waits for, or undefined when it goes straight on. */
  kindOf(frame: ClientFrame): HookKind | undefined {
    const kind = KIND_OF_OP[frame.op as GatedOp];
    return kind !== undefined && this.on.has(kind) ? kind : undefined;
  }

  get cacheHits(): number {
    return this.cache.hits;
  }

  /** Asks the backend whether a connection may open; a failed call refuses it (503): the broker did not connect it. */
  async connect(req: ConnectRequest): Promise<ConnectVerdict> {
    const body = {
      client: { transport: req.transport, addr: req.addr },
      name: req.name ?? null,
      topics: req.topics,
      headers: req.headers,
      token: req.token ? { sub: req.token.name, acl: { pub: req.token.pub, sub: req.token.sub, send: req.token.send }, admin: req.token.admin, exp: req.token.exp ?? null } : null,
    };
    // The identity a decision depends on: not the port, which changes with every connection of a reconnect storm.
    const key = JSON.stringify(['connect', req.transport, req.addr.replace(/:\d+$/, ''), body.name, body.topics, body.headers, body.token]);
    const result = await this.ask('connect', body, key);
    return result.ok ? connectVerdict(result.answer, req.token) : connectFailure(result);
  }

  async subscribe(client: HookClientInfo, frame: FrameOf<'sub'>): Promise<SubscribeOutcome> {
    const body = { client, topic: frame.topic, since: frame.since ?? null, epoch: frame.epoch ?? null, presence: frame.presence === true };
    const result = await this.ask('subscribe', body, JSON.stringify(['subscribe', client.name, frame.topic, body.presence]));
    return result.ok ? subscribeVerdict(result.answer, frame.topic, frame.id) : failureError(result, 'subscribe', frame.id);
  }

  async publish(client: HookClientInfo, frame: FrameOf<'pub'>): Promise<PublishOutcome> {
    const result = await this.ask('publish', { client, topic: frame.topic, data: frame.data });
    return result.ok ? publishVerdict(result.answer, frame.topic, frame.id) : failureError(result, 'publish', frame.id);
  }

  async rpc(client: HookClientInfo, frame: FrameOf<'rpc'>): Promise<RpcOutcome> {
    const result = await this.ask('rpc', { client, method: frame.method, data: frame.data }, undefined);
    return result.ok ? rpcVerdict(result.answer, frame.method, frame.id) : failureError(result, 'rpc', frame.id);
  }

  /** One call, through the cache when the call has an identity (`key`) and the backend gave its answer a lifetime. */
  private async ask(kind: HookKind, body: unknown, key?: string): Promise<HookResult> {
    if (key !== undefined) {
      const cached = this.cache.get(key);
      if (cached) return { ok: true, answer: cached, bytes: 0 };
    }
    const result = await this.client.call(kind, body);
    if (!result.ok) {
      if (result.why !== 'breaker' && result.why !== 'busy') this.log?.warn({ hook: kind, why: result.why, status: (result as { status?: number }).status }, `hook call failed: ${result.message}`);
    } else if (key !== undefined) {
      const ms = cacheLifetime(result.answer);
      if (ms > 0) this.cache.set(key, result.answer, ms, result.bytes);
    }
    return result;
  }

  /** Gives the webhooks still queued up to `ms` to reach the backend, then stops. */
  async close(ms = 0): Promise<void> {
    await this.events?.close();
    if (this.webhooks && ms > 0) await this.webhooks.drained(ms);
    this.webhooks?.close();
    this.client.close();
  }
}

// NodeCalls: a request from one node of the cluster to another and its answer, over Redis pub/sub (a channel per
// node, `sb:call:<node>`), for what only the node holding a connection can do: an SSE POST for a stream held
// elsewhere, an MQTT session taken over from another node. Its own subscriber connection (the engine's carries the
// messages). The answer is true: `gone` when the node is not alive (its heartbeat key is missing: nothing was sent),
// `unavailable` when the request was never written to Redis, `timeout` when it was and no answer came (it may have
// run: the PUBLISH's own reply lost with its connection, too).
import { randomBytes } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redisConnections, type ClusterSubscriber, type PlainSubscriber } from './connections.js';
import { KEYS } from './keys.js';
import { maybeRan, reachedNobody, sendWritten } from './outcome.js';
import type { Transport } from '../../protocol/frames.js';

export type CallResult = { ok: true; answer: string } | { ok: false; why: 'gone' | 'unavailable' | 'timeout' | 'busy' };
export type CallHandler = (body: string) => Promise<string>;

/** Calls waiting for their answer at most (beyond: `busy` at once). */
const MAX_PENDING = 10_000;

const channelOf = (node: string) => `sb:call:${node}`;

export class NodeCalls {
  private readonly sub: PlainSubscriber | ClusterSubscriber;
  private readonly handlers = new Map<string, CallHandler>();
  private readonly pending = new Map<string, (answer: string | undefined) => void>();
  private next = 0;
  private readonly prefix = randomBytes(4).toString('hex');

  constructor(
    url: string,
    private readonly cmd: Redis | Cluster,
    /** This node's id (the engine's). */
    readonly node: string,
    private readonly log: Logger,
  ) {
    this.sub = redisConnections(url, `sb-${node}-calls`).bus;
    this.sub.on('error', (err: Error) => this.log.warn({ err: err.message }, 'redis node-calls subscriber error'));
    this.sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => this.received(message.toString('utf8')));
  }

  async start(): Promise<void> {
    await this.sub.connect();
    await this.sub.subscribe(channelOf(this.node));
  }

  close(): void {
    this.sub.disconnect();
    for (const resolve of this.pending.values()) resolve(undefined);
    this.pending.clear();
  }

  /** What this node answers to calls of `kind`. A handler that throws answers nothing (the caller times out). */
  handle(kind: string, handler: CallHandler): void {
    this.handlers.set(kind, handler);
  }

  async call(node: string, kind: string, body: string, timeoutMs: number): Promise<CallResult> {
    if (this.pending.size >= MAX_PENDING) return { ok: false, why: 'busy' };
    const id = `${this.prefix}.${(++this.next).toString(36)}`;
    let timer: NodeJS.Timeout | undefined;
    const answered = new Promise<string | undefined>((resolve) => {
      this.pending.set(id, resolve);
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    const done = (result: CallResult): CallResult => {
      this.pending.delete(id);
      clearTimeout(timer);
      return result;
    };
    try {
      if (!(await this.alive(node))) return done({ ok: false, why: 'gone' });
    } catch (err) {
      // A read that got no answer: the call itself was never sent, whatever became of the read.
      this.log.info({ err: (err as Error).message, node, kind }, 'node call not sent: Redis did not answer');
      return done({ ok: false, why: 'unavailable' });
    }
    let receivers: unknown;
    try {
      // A command that knows whether it was written (outcome.ts): never sent again by ioredis, and one written may
      // have reached the node even when its answer (or the PUBLISH's own reply) never came. On a Redis Cluster a
      // keyless PUBLISH may go through any master: one whose connection is ready.
      const cmd = this.cmd;
      const via = cmd instanceof Cluster ? (cmd.nodes('master').find((n) => n.status === 'ready') ?? cmd) : cmd;
      receivers = await sendWritten(via, 'publish', [channelOf(node), JSON.stringify({ k: kind, i: id, f: this.node, b: body })]);
    } catch (err) {
      this.log.info({ err: (err as Error).message, node, kind }, 'node call not answered by Redis');
      // A PUBLISH that was written (then timed out, or lost its connection) may have gone out.
      return done({ ok: false, why: maybeRan(err) ? 'timeout' : 'unavailable' });
    }
    // One Redis counts its own receivers: none, and no replica whose subscribers it would reach uncounted, means that
    // node is not listening and nothing was received. (A Redis Cluster counts those of the master it went through.)
    if (!(this.cmd instanceof Cluster) && Number(receivers) === 0 && (await reachedNobody(this.cmd))) return done({ ok: false, why: 'unavailable' });
    const answer = await answered;
    return done(answer === undefined ? { ok: false, why: 'timeout' } : { ok: true, answer });
  }

  /** Whether `node` is alive: its heartbeat key is there (a node gone is reaped, its clients ended). */
  async alive(node: string): Promise<boolean> {
    return (await this.cmd.exists(KEYS.heartbeat(node))) === 1;
  }

  /** Who holds the client name `name` in the cluster (the engine's client records), or undefined. */
  async holder(name: string): Promise<{ id: string; node: string; transport: Transport } | undefined> {
    const id = await this.cmd.hget(KEYS.names, name);
    return id ? this.client(id) : undefined;
  }

  /** Where the client with id `id` is connected (the engine's client records), or undefined. */
  async client(id: string): Promise<{ id: string; node: string; transport: Transport } | undefined> {
    const raw = await this.cmd.hget(KEYS.clients, id);
    if (!raw) return undefined;
    const r = JSON.parse(raw) as { id: string; node: string; transport: Transport };
    return { id: r.id, node: r.node, transport: r.transport };
  }

  private received(text: string): void {
    let m: { k?: unknown; i?: unknown; f?: unknown; b?: unknown; a?: unknown };
    try {
      m = JSON.parse(text) as typeof m;
    } catch {
      return this.log.warn('node call: not JSON; ignored');
    }
    if (typeof m.a === 'string' && typeof m.b === 'string') return this.pending.get(m.a)?.(m.b);
    if (typeof m.k !== 'string' || typeof m.i !== 'string' || typeof m.f !== 'string' || typeof m.b !== 'string') return;
    const handler = this.handlers.get(m.k);
    if (!handler) return this.log.warn({ kind: m.k }, 'node call of an unknown kind; ignored');
    const { i, f } = m;
    const body = m.b;
    Promise.resolve().then(() => handler(body)).then(
      (answer) => this.cmd.publish(channelOf(f), JSON.stringify({ a: i, b: answer })).catch((err: Error) => this.log.info({ err: err.message, to: f }, 'node call answer not sent')),
      (err: unknown) => this.log.error({ err, kind: m.k }, 'node call handler failed'),
    );
  }
}

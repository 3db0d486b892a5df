// Webhooks: events sent to the application backend (POST <hook-url>/events, `{"events":[…]}`), at least once.
// A bounded per-process queue (--webhook-queue); batches of --webhook-batch events, one batch in flight at a time
// (so events arrive in the order they happened, but for retries); a failed batch is retried with a doubling
// delay from --webhook-retry-ms up to 30 s, and leaves the queue only once the backend answered 2xx. Over the bound
// the newest events are dropped: counted, and logged at most once a second. Each event carries an id
// (`<process>-<n>`, unique across restarts) the backend deduplicates on, since a retried batch may have arrived.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Fifo } from '../protocol/fifo.js';
import type { HookClient } from './client.js';

export type WebhookEventType =
  | 'client.connected'
  | 'client.disconnected'
  | 'topic.occupied'
  | 'topic.vacated'
  | 'presence.join'
  | 'presence.leave'
  | 'presence.rename';

export interface WebhookEvent {
  id: string;
  type: WebhookEventType;
  /** ms since 1970 when it happened. */
  ts: number;
  [field: string]: unknown;
}

export interface WebhookOptions {
  maxQueue: number;
  batch: number;
  retryMs: number;
  /** Longest delay between retries. */
  maxRetryMs?: number;
}

export class Webhooks {
  private readonly queue = new Fifo<WebhookEvent>();
  private sending = false;
  private retryDelay: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly process = randomBytes(6).toString('base64url');
  private n = 0;
  private closed = false;
  /** Counters: events queued, delivered (acknowledged by the backend), dropped over the bound, batches retried. */
  readonly stats = { queued: 0, delivered: 0, dropped: 0, retries: 0 };
  private droppedUnlogged = 0;
  private dropLogTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: HookClient,
    private readonly options: WebhookOptions,
    private readonly log?: Logger,
  ) {
    this.retryDelay = options.retryMs;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Queues one event (sent soon, batched with those around it); dropped and counted over the bound. */
  emit(type: WebhookEventType, fields: Record<string, unknown>): void {
    if (this.closed) return;
    if (this.pending >= this.options.maxQueue) return this.drop();
    this.queue.push({ id: `${this.process}-${++this.n}`, type, ts: Date.now(), ...fields });
    this.stats.queued++;
    if (!this.sending && this.timer === undefined) this.timer = setTimeout(() => this.send(), 0);
  }

  private drop(): void {
    this.stats.dropped++;
    this.droppedUnlogged++;
    if (this.dropLogTimer) return;
    const flush = () => {
      this.dropLogTimer = undefined;
      if (this.droppedUnlogged === 0) return;
      this.log?.warn({ dropped: this.droppedUnlogged, total: this.stats.dropped, queue: this.options.maxQueue, flag: '--webhook-queue' }, `webhook events dropped: the queue is full (${this.options.maxQueue}); the backend is not keeping up`);
      this.droppedUnlogged = 0;
      this.dropLogTimer = setTimeout(flush, 1000);
      this.dropLogTimer.unref();
    };
    flush();
  }

  private send(): void {
    this.timer = undefined;
    if (this.sending || this.pending === 0) return;
    this.sending = true;
    const batch = this.queue.slice(this.options.batch);
    this.client.call('events', { events: batch }).then((result) => {
      this.sending = false;
      if (result.ok) {
        for (let i = 0; i < batch.length; i++) this.queue.shift(); // only emit() changed the queue meanwhile, at its tail
        this.stats.delivered += batch.length;
        this.retryDelay = this.options.retryMs;
        if (this.pending > 0) this.timer = setTimeout(() => this.send(), 0);
        this.settle();
        return;
      }
      // Not acknowledged: the whole batch again later (the backend may have taken part of it: ids tell).
      this.stats.retries++;
      if (this.stats.retries === 1 || this.stats.retries % 100 === 0) this.log?.warn({ why: result.why, pending: this.pending, retryMs: this.retryDelay }, `webhook batch not delivered: ${result.message}; retrying`);
      this.timer = setTimeout(() => this.send(), this.retryDelay);
      this.timer.unref();
      this.retryDelay = Math.min(this.retryDelay * 2, this.options.maxRetryMs ?? 30_000);
    });
  }

  private idle: (() => void)[] = [];

  private settle(): void {
    if (this.pending > 0) return;
    for (const f of this.idle.splice(0)) f();
  }

  /** Resolves once every queued event was delivered, or after `ms` (shutdown gives the backend a moment). */
  drained(ms: number): Promise<boolean> {
    if (this.pending === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      t.unref();
      this.idle.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.dropLogTimer);
  }
}

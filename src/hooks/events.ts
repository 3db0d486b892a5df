// ClientEvents: what happens to connections, as webhook events. A connection reports its own changes (its Link
// calls these when webhooks are on, whatever the engine); this turns them into client.connected/disconnected,
// topic.occupied/vacated (first local subscriber of a filter in, last out: per process) and presence.join/leave/
// rename (clients that subscribed to a filter with `presence: true`, as the TCP room's members do).
import type { Webhooks } from './webhooks.js';

/** What the events need of a connection. */
export interface EventSubject {
  readonly id: string;
  readonly name: string;
  readonly transport: string;
  readonly addr: string;
  readonly meta?: Record<string, unknown> | undefined;
  /** Filters it watches for presence. */
  readonly presence: ReadonlySet<string>;
}

export interface CloseInfo {
  code: number;
  reason: string;
  cause: string;
}

export class ClientEvents {
  /** Local subscribers per filter. Keys come from clients: a Map. */
  private readonly occupancy = new Map<string, number>();
  private readonly announced = new WeakSet<EventSubject>();

  constructor(private readonly webhooks: Webhooks) {}

  private client(s: EventSubject): Record<string, unknown> {
    return s.meta === undefined ? { id: s.id, name: s.name, transport: s.transport, addr: s.addr } : { id: s.id, name: s.name, transport: s.transport, addr: s.addr, meta: s.meta };
  }

  /** Idempotent: the first thing said about a connection is that it connected. */
  connected(s: EventSubject): void {
    if (this.announced.has(s)) return;
    this.announced.add(s);
    this.webhooks.emit('client.connected', { client: this.client(s) });
  }

  disconnected(s: EventSubject, close: CloseInfo): void {
    if (!this.announced.has(s)) return; // never admitted: never announced
    this.webhooks.emit('client.disconnected', { client: this.client(s), cause: close.cause, code: close.code, reason: close.reason });
  }

  subscribed(s: EventSubject, filter: string): void {
    this.connected(s);
    const n = (this.occupancy.get(filter) ?? 0) + 1;
    this.occupancy.set(filter, n);
    if (n === 1) this.webhooks.emit('topic.occupied', { topic: filter });
  }

  unsubscribed(_s: EventSubject, filter: string): void {
    const n = (this.occupancy.get(filter) ?? 0) - 1;
    if (n > 0) return void this.occupancy.set(filter, n);
    this.occupancy.delete(filter);
    if (n === 0) this.webhooks.emit('topic.vacated', { topic: filter });
  }

  watched(s: EventSubject, filter: string): void {
    this.connected(s);
    this.webhooks.emit('presence.join', { topic: filter, client: this.client(s) });
  }

  unwatched(s: EventSubject, filter: string): void {
    this.webhooks.emit('presence.leave', { topic: filter, client: this.client(s) });
  }

  renamed(s: EventSubject, old: string): void {
    for (const filter of s.presence) this.webhooks.emit('presence.rename', { topic: filter, client: this.client(s), old });
  }
}

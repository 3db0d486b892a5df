// ClientEvents: what happens to connections, as webhook events. A connection reports its own changes (its Link
// calls these when webhooks are on, whatever the engine); this turns them into client.connected/disconnected,
// topic.occupied/vacated (first subscriber of a filter in the deployment in, last out: counted by the engine, across
// the cluster on Redis) and presence.join/leave/rename (clients that subscribed to a filter with `presence: true`,
// as the TCP room's members do).
import type { Webhooks } from './webhooks.js';
import type { Occupancy, OccupancyListener } from '../engine/engine.js';
import { LocalOccupancy } from '../engine/occupancy.js';

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

export class ClientEvents implements OccupancyListener {
  private occupancy: Occupancy = new LocalOccupancy(this);
  private readonly announced = new WeakSet<EventSubject>();

  constructor(private readonly webhooks: Webhooks) {}

  /** Counts occupancy with the engine's deployment (on Redis: first in and last out of the whole cluster, said once). */
  countWith(deployment: { occupancy(listener: OccupancyListener): Occupancy }): void {
    this.occupancy = deployment.occupancy(this);
  }

  occupied(filter: string): void {
    this.webhooks.emit('topic.occupied', { topic: filter });
  }

  vacated(filter: string): void {
    this.webhooks.emit('topic.vacated', { topic: filter });
  }

  /** Lets the occupancy settle (the last vacated topics told) before the webhooks drain. */
  async close(): Promise<void> {
    await this.occupancy.close();
  }

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
    this.occupancy.taken(filter);
  }

  unsubscribed(_s: EventSubject, filter: string): void {
    this.occupancy.dropped(filter);
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

// PresenceRelay: presence events about this node's clients go on the bus, where every node (this one too) tells its
// own watchers. While Redis cannot be reached an event is held (bounded: in all, and per client, so one client's
// sub/unsub spam during an outage cannot push out its neighbours') and published when it can, in order. An event
// whose PUBLISH was sent but not answered is not sent again (it may have gone out: no duplicate); it is logged.
import type { Logger } from 'pino';
import type { ClientInfo, PresenceEvent, PublicClient, Transport } from '../../protocol/frames.js';

/** Presence events a node holds while Redis is unreachable (a few hundred bytes each: names and filters are bounded). */
export const MAX_HELD_PRESENCE = 10_000;
/** Of which one client's own events. */
export const MAX_HELD_PRESENCE_PER_CLIENT = 100;

/** The subject of a presence event as the bus carries it. */
export interface PresenceSubject {
  id: string;
  name: string;
  transport: Transport;
  addr: string;
  /** The connect hook's, shown in presence events and `who` on every node. */
  meta?: Record<string, unknown> | undefined;
}

/** A presence event as the bus carries it (`p` + this JSON). */
export interface BusPresence {
  e: PresenceEvent;
  c: PresenceSubject;
  f: string;
  o?: string;
}

export interface PresenceRelayOptions {
  /** The command connection is up: an event can be published now. */
  up: () => boolean;
  /** Publishes one payload on the bus; false when it was not (this node is not a member of the cluster now). */
  publish: (payload: string) => Promise<boolean>;
  /** Publishes held payloads in order, at once (one pipeline). */
  publishAll: (payloads: string[]) => Promise<unknown>;
  log: Logger;
}

export class PresenceRelay {
  /** Events that could not be published (Redis unreachable), oldest first, up to MAX_HELD_PRESENCE. */
  private held: string[] = [];
  /** Held events per client id, charged against MAX_HELD_PRESENCE_PER_CLIENT. */
  private readonly heldBy = new Map<string, number>();
  private dropped = 0;

  constructor(private readonly options: PresenceRelayOptions) {}

  /** Held or dropped events wait to be published or reported. */
  get pending(): boolean {
    return this.held.length > 0 || this.dropped > 0;
  }

  publish(event: PresenceEvent, c: PresenceSubject, filter: string, old?: string): void {
    const body: BusPresence = { e: event, c, f: filter };
    if (old !== undefined) body.o = old;
    const payload = 'p' + JSON.stringify(body);
    if (!this.options.up() || this.held.length > 0) return this.hold(payload, c.id);
    this.options.publish(payload).then((published) => {
      // Taken for dead (reaped) and not re-asserted yet: held, in order, like the events of a time without Redis (the
      // re-assert drops them and announces each client again, or publishes them when the node had not been reaped).
      if (!published) this.hold(payload, c.id);
    }, (err: Error) => {
      // Not connected: nothing was sent (no offline queue), so holding it cannot double it.
      if (/Stream isn't writeable|enableOfflineQueue/i.test(err.message)) this.hold(payload, c.id);
      else this.options.log.info({ err: err.message, event, client: c.id, filter }, 'presence event may be lost: Redis did not answer');
    });
  }

  /** Presence events held while Redis could not be reached, published in order now that it can. */
  flush(): void {
    const { log } = this.options;
    if (this.dropped > 0) log.warn({ dropped: this.dropped, limit: MAX_HELD_PRESENCE, perClient: MAX_HELD_PRESENCE_PER_CLIENT }, 'presence events lost: more were held while Redis was unreachable than the limits (in all, or per client)');
    this.dropped = 0;
    if (this.held.length === 0) return;
    const held = this.held.splice(0);
    this.heldBy.clear();
    this.options.publishAll(held).catch((err: Error) => log.info({ err: err.message, events: held.length }, 'held presence events lost: Redis unreachable again'));
    log.info({ events: held.length }, 'presence events held while Redis was unreachable: published');
  }

  /**
   * The node had been taken for dead: every node heard its clients end (`timeout`), so each is announced again
   * (`join` per filter) and the events held meanwhile, older than that, are dropped.
   */
  announceAgain(clients: { subject: PresenceSubject; filters: Iterable<string> }[]): void {
    const heldDropped = this.discard();
    let joins = 0;
    for (const { subject, filters } of clients) {
      for (const filter of filters) {
        this.publish('join', subject, filter);
        joins++;
      }
    }
    this.options.log.warn({ clients: clients.length, joins, heldDropped }, 'this node had been taken for dead: its clients announced again');
  }

  /** Drops what is held (outdated: the node's clients are announced afresh); returns how many events were lost. */
  discard(): number {
    const lost = this.held.splice(0).length + this.dropped;
    this.heldBy.clear();
    this.dropped = 0;
    return lost;
  }

  private hold(payload: string, client: string): void {
    const mine = this.heldBy.get(client) ?? 0;
    if (this.held.length >= MAX_HELD_PRESENCE || mine >= MAX_HELD_PRESENCE_PER_CLIENT) {
      this.dropped++;
      return;
    }
    this.held.push(payload);
    this.heldBy.set(client, mine + 1);
  }
}

/** A client of another node, as the subject of a presence event delivered here. */
export class RemoteClient {
  constructor(readonly c: PresenceSubject) {}
  get id(): string {
    return this.c.id;
  }
  get name(): string {
    return this.c.name;
  }
  publicInfo(): PublicClient {
    const { meta } = this.c;
    return meta === undefined ? { id: this.c.id, name: this.c.name, transport: this.c.transport } : { id: this.c.id, name: this.c.name, transport: this.c.transport, meta };
  }
  info(): ClientInfo {
    return { id: this.c.id, name: this.c.name, addr: this.c.addr, transport: this.c.transport };
  }
}

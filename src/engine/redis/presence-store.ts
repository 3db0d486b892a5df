// RedisPresence: the cluster's PresenceStore (engine/seam.ts). Records and unique names in Redis (ClientDirectory),
// `who` pages over every node's records, presence events about this node's clients onto the bus (PresenceRelay,
// held while Redis is unreachable), where every node (this one too) tells its own watchers.
import { ProtocolError, type FrameId } from '../../protocol/errors.js';
import type { PresenceEvent } from '../../protocol/frames.js';
import { filterMatches, isWildcard } from '../../protocol/topic.js';
import type { Session } from '../engine.js';
import { Roster, type RosterPage } from '../roster.js';
import type { Maybe, PresenceStore, Recipient } from '../seam.js';
import type { ClientDirectory, ClientRecord } from './directory.js';
import type { PresenceRelay, PresenceSubject } from './presence-relay.js';
import { unavailable } from './refusals.js';
import { nameAtJoin } from '../rules.js';

export class RedisPresence<S extends Session> implements PresenceStore<S> {
  constructor(
    private readonly directory: ClientDirectory<S>,
    private readonly relay: PresenceRelay,
    /** The command connection is up. */
    private readonly up: () => boolean,
  ) {}

  /** Redis down: the local check only (the re-assert after reconnect writes the name). */
  claimAtJoin(s: S, asked: string | undefined, base: string): Maybe<{ name: string; problem: ProtocolError | null }> {
    return nameAtJoin(asked, base, (name) => this.directory.claimName(s, name, ''));
  }

  claimName(s: S, name: string, old: string, id: FrameId | undefined): Maybe<boolean | ProtocolError> {
    if (!this.up()) return unavailable(id);
    return this.directory.claimName(s, name, old, true);
  }

  record(s: S): Promise<void> {
    return this.directory.mirror(s);
  }

  drop(id: string, name: string): Promise<void> {
    return this.directory.drop(id, name);
  }

  async find(idOrName: string, id: FrameId | undefined): Promise<Recipient | undefined | ProtocolError> {
    if (!this.up()) return unavailable(id);
    const r = await this.directory.find(idOrName);
    return r && { id: r.id, name: r.name, node: r.node };
  }

  async who(topic: string | undefined, after: number, limit: number, admin: boolean, id: FrameId | undefined): Promise<{ page: RosterPage; listed: number } | ProtocolError> {
    if (!this.up()) return unavailable(id);
    const records = await this.directory.all();
    const members =
      topic === undefined ? records : isWildcard(topic) ? records.filter((r) => r.subs.includes(topic)) : records.filter((r) => r.subs.some((f) => filterMatches(f, topic)));
    // Every record was read and parsed for this answer: the asker pays for all of them, not only for its page.
    return { page: new Roster<ClientRecord>().page(topic ?? '', () => members, after, limit, admin), listed: records.length };
  }

  announce(event: PresenceEvent, subject: S, filter: string, old?: string): void {
    this.relay.publish(event, subjectOf(subject), filter, old);
  }
}

/** A session as the subject of a presence event on the bus (with the connect hook's `meta`, shown on every node). */
export function subjectOf(s: Session): PresenceSubject {
  const meta = s.publicInfo().meta;
  return meta === undefined ? { id: s.id, name: s.name, transport: s.transport, addr: s.addr } : { id: s.id, name: s.name, transport: s.transport, addr: s.addr, meta };
}

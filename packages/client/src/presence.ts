// PresenceMap: who holds a filter, as a map kept from a `who` snapshot and the presence events after it.
// A re-sync after a reconnect diffs the fresh snapshot against what the app saw, so only real changes show. Pure.
import type { ClientInfo, EventFrame, Member } from './wire.js';

export type PresenceChange =
  | { event: 'join' | 'leave' | 'timeout' | 'idle' | 'active'; member: Member }
  | { event: 'rename'; member: Member; old: string };

export function toMember(c: ClientInfo & { state?: string }): Member {
  return { id: c.id, name: c.name, transport: c.transport, state: c.state === 'idle' ? 'idle' : 'active' };
}

/** The change an event makes to `members` (applied in place), or null when it changes nothing. */
export function applyEvent(members: Map<string, Member>, e: Pick<EventFrame, 'event' | 'client' | 'old'>): PresenceChange | null {
  const known = members.get(e.client.id);
  switch (e.event) {
    case 'join': {
      const member = toMember(e.client);
      members.set(member.id, member);
      return known ? null : { event: 'join', member };
    }
    case 'leave':
    case 'timeout':
      if (!known) return null;
      members.delete(known.id);
      return { event: e.event, member: known };
    case 'rename': {
      const member: Member = { ...(known ?? toMember(e.client)), name: e.client.name };
      members.set(member.id, member);
      return { event: 'rename', member, old: e.old ?? known?.name ?? member.name };
    }
    case 'idle':
    case 'active': {
      const state = e.event;
      if (known?.state === state) return null;
      const member: Member = { ...(known ?? toMember(e.client)), state };
      members.set(member.id, member);
      return { event: state, member };
    }
  }
}

/** The changes from `before` to `after`, one per member that really differs; `quiet` ids (our own) change silently. */
export function diffMembers(before: ReadonlyMap<string, Member>, after: ReadonlyMap<string, Member>, quiet: ReadonlySet<string> = new Set()): PresenceChange[] {
  const changes: PresenceChange[] = [];
  for (const [id, old] of before) {
    if (!after.has(id) && !quiet.has(id)) changes.push({ event: 'leave', member: old });
  }
  for (const [id, now] of after) {
    if (quiet.has(id)) continue;
    const old = before.get(id);
    if (!old) changes.push({ event: 'join', member: now });
    else {
      if (old.name !== now.name) changes.push({ event: 'rename', member: now, old: old.name });
      if (old.state !== now.state) changes.push({ event: now.state, member: now });
    }
  }
  return changes;
}

/** The members of one subscription's filter; the subscription tells the app the changes it returns. */
export class PresenceMap {
  readonly members = new Map<string, Member>();
  /** A `who` snapshot being read; `stated`: members whose state an idle/active event of it already set. */
  private sync: { phase: 'waiting' | 'building'; members: Map<string, Member>; left: Set<string>; stated: Set<string> } | undefined;
  private synced = false;

  /** An event of the connection: the change it makes to the map now, or null (none, or taken into the snapshot being read). */
  event(frame: Pick<EventFrame, 'event' | 'client' | 'old'>): PresenceChange | null {
    if (this.sync?.phase === 'waiting') return null; // the coming `who` snapshot already includes it
    if (this.sync) {
      if (frame.event === 'leave' || frame.event === 'timeout') this.sync.left.add(frame.client.id);
      if (frame.event === 'idle' || frame.event === 'active') this.sync.stated.add(frame.client.id);
      applyEvent(this.sync.members, frame);
      return null;
    }
    return applyEvent(this.members, frame);
  }

  /** A `who` snapshot was asked for: events from now until its first page are in it. */
  syncStarted(): void {
    this.sync = { phase: 'waiting', members: new Map(), left: new Set(), stated: new Set() };
  }

  /**
   * One page of the snapshot. At the last one the map becomes the snapshot, and the changes from what the app saw
   * are returned (none at the first sync: the app saw nothing before it); undefined before the last page, or when no
   * snapshot is being read.
   */
  syncPage(clients: readonly (ClientInfo & { state?: string })[], last: boolean, quiet: ReadonlySet<string>): PresenceChange[] | undefined {
    const sync = this.sync;
    if (!sync) return undefined;
    sync.phase = 'building';
    for (const c of clients) {
      if (sync.left.has(c.id)) continue;
      const known = sync.members.get(c.id);
      if (!known) sync.members.set(c.id, toMember(c));
      // Added by a join or rename event of this sync (events carry no state: it read as active): the page's state.
      else if (!sync.stated.has(c.id) && c.state !== undefined) sync.members.set(c.id, { ...known, state: toMember(c).state });
    }
    if (!last) return undefined;
    this.sync = undefined;
    const changes = this.synced ? diffMembers(this.members, sync.members, quiet) : [];
    this.members.clear();
    for (const [id, m] of sync.members) this.members.set(id, m);
    this.synced = true;
    return changes;
  }

  /** The snapshot will not come (the connection dropped, or the `who` failed): the map keeps what it had. */
  syncEnded(): void {
    this.sync = undefined;
  }
}

// PresenceState: who holds a filter, as a map kept from a `who` snapshot and the presence events after it.
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

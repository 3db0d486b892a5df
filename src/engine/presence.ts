// Presence: which clients watch join/leave/rename events of a filter (sub with presence:true), and how an event
// reaches them: coalesced per watcher with its last unwritten event about the same subject and filter. Pure.
import type { PresenceEvent, ServerFrame } from '../protocol/frames.js';
import { Outgoing } from '../protocol/outgoing.js';
import type { Session, SessionMailbox } from './engine.js';

export class Presence<T> {
  private readonly watchersByFilter = new Map<string, Set<T>>();

  watch(filter: string, watcher: T): void {
    let set = this.watchersByFilter.get(filter);
    if (!set) this.watchersByFilter.set(filter, (set = new Set()));
    set.add(watcher);
  }

  unwatch(filter: string, watcher: T): void {
    const set = this.watchersByFilter.get(filter);
    if (!set) return;
    set.delete(watcher);
    if (set.size === 0) this.watchersByFilter.delete(filter);
  }

  watchers(filter: string): ReadonlySet<T> {
    return this.watchersByFilter.get(filter) ?? EMPTY;
  }
}

const EMPTY: ReadonlySet<never> = new Set();

/**
 * Sends a presence event about `subject` to `watchers` of `filter`. Coalesced per watcher: when the watcher's last
 * queued, unwritten frame is an event about the same subject and filter, the two become one (see coalesce).
 */
export function tellWatchers(watchers: ReadonlySet<{ mailbox: SessionMailbox }>, event: PresenceEvent, subject: Session, filter: string, old?: string): void {
  const key = `${subject.id}\u0000${filter}`;
  const out = presenceFrame(event, subject, filter, old, key, old);
  // One merged frame per distinct tail, shared by every watcher holding that tail (usually all of them).
  let merges: Map<Outgoing, Outgoing | null> | undefined;
  for (const w of watchers) {
    const tail = w.mailbox.tail;
    if (tail?.presence?.key === key) {
      merges ??= new Map();
      let merged = merges.get(tail);
      if (merged === undefined) merges.set(tail, (merged = coalesce(tail, event, subject, filter, key)));
      if (merged !== tail) {
        w.mailbox.replaceTail(merged);
        continue;
      }
    }
    w.mailbox.push(out);
  }
}

function presenceFrame(event: PresenceEvent, subject: Session, filter: string, old: string | undefined, key: string, firstOld: string | undefined): Outgoing {
  const client = subject.publicInfo();
  const frame: ServerFrame = old === undefined ? { op: 'event', event, client, topic: filter } : { op: 'event', event, client, topic: filter, old };
  const out = new Outgoing(frame, subject.info());
  out.presence = firstOld === undefined ? { key } : { key, firstOld };
  return out;
}

/**
 * What a watcher should hold instead of `tail` (an unwritten event about the same subject and filter) followed by
 * `event`: renames fold into one (first old name, last name; none when back to the first), a join followed by a
 * rename is a join under the new name, a join followed by a leave or timeout is nothing (the watcher never saw it).
 * Anything else is not merged: `tail` is returned and the new event is queued after it.
 */
function coalesce(tail: Outgoing, event: PresenceEvent, subject: Session, filter: string, key: string): Outgoing | null {
  const before = (tail.frame as { event?: PresenceEvent }).event;
  if (before === 'rename' && event === 'rename') {
    const first = tail.presence!.firstOld!;
    return first === subject.name ? null : presenceFrame('rename', subject, filter, first, key, first);
  }
  if (before === 'join' && event === 'rename') return presenceFrame('join', subject, filter, undefined, key, undefined);
  if (before === 'join' && (event === 'leave' || event === 'timeout')) return null;
  return tail;
}

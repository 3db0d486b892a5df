// Subscriptions: the filters each local session holds, kept in step with the topic index (fan-out), the presence
// watchers and the `who` roster. A change is charged to its session's inbound rate by what it cost the match cache
// (CACHE_NODES_PER_TOKEN), so a client churning wildcards over many cached topics pays for it.
import type { FrameId, ProtocolError } from '../protocol/errors.js';
import type { Session } from './engine.js';
import { CACHE_NODES_PER_TOKEN } from './options.js';
import type { Presence } from './presence.js';
import type { Roster } from './roster.js';
import { subscribeRefusal } from './rules.js';
import type { TopicIndex } from './topic-index.js';

export class Subscriptions<S extends Session> {
  constructor(
    private readonly parts: { index: TopicIndex<S>; presence: Presence<S>; roster: Roster<S> },
    private readonly maxSubscriptions: number,
  ) {}

  /** Adds `filter` (and presence on it, or not) for `s`; true when the filter is new to it (a join to announce). */
  add(s: S, filter: string, presence: boolean, id?: FrameId): ProtocolError | boolean {
    const refused = subscribeRefusal(s, filter, this.maxSubscriptions, id);
    if (refused) return refused;
    const { index, presence: watchers, roster } = this.parts;
    const isNew = !s.subscriptions.has(filter);
    if (isNew) {
      s.hold(filter);
      index.add(filter, s);
      this.charge(s);
      roster.subscriptionChanged(filter);
    }
    if (presence) {
      s.watch(filter);
      watchers.watch(filter, s);
    } else if (s.presence.delete(filter)) {
      watchers.unwatch(filter, s);
    }
    return isNew;
  }

  /** Drops `filter` (and presence on it) for `s`; true when it held it (a leave to announce). */
  remove(s: S, filter: string): boolean {
    if (!s.subscriptions.delete(filter)) return false;
    this.parts.roster.subscriptionChanged(filter);
    this.parts.index.remove(filter, s);
    this.charge(s);
    this.parts.presence.unwatch(filter, s);
    s.presence.delete(filter);
    return true;
  }

  /** Takes `s` out of the index and the watchers for every filter it holds (it is gone); its own sets stay. */
  detach(s: S): void {
    for (const filter of s.subscriptions) {
      this.parts.index.remove(filter, s);
      this.parts.presence.unwatch(filter, s);
    }
  }

  private charge(s: S): void {
    s.rate?.charge(Math.floor(this.parts.index.lastInvalidationWork / CACHE_NODES_PER_TOKEN));
  }
}

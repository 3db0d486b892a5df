// Locals: this process's own clients, the same structures on every deployment: the registry (ids, names), the topic
// index (who a publish reaches), presence watchers, the `who` roster, the filters each session holds, the counters;
// and the two loops over them: the fan-out of a message to local subscribers and the (coalesced) presence event to
// local watchers. The core (core.ts) and the deployment's parts (memory.ts, redis/) share one instance.
import type { Session } from './engine.js';
import { errorFrame, type PresenceEvent } from '../protocol/frames.js';
import type { ProtocolError } from '../protocol/errors.js';
import type { Outgoing } from '../protocol/outgoing.js';
import { isWildcard } from '../protocol/topic.js';
import { Presence, tellWatchers } from './presence.js';
import { Registry } from './registry.js';
import { Roster } from './roster.js';
import { BrokerStats } from './stats.js';
import { Subscriptions } from './subscriptions.js';
import { TopicIndex } from './topic-index.js';

export interface LocalsOptions {
  maxSubscriptions: number;
  /** The chat room topic; with more presence watchers than roomAnnounceMax its joins and leaves are not announced. */
  room?: string | undefined;
  roomAnnounceMax?: number | undefined;
}

/** A subject of a presence event: a local session, or another node's client as the bus carries it. */
export type PresenceSubjectOf<S extends Session> = S | Pick<Session, 'id' | 'name' | 'publicInfo' | 'info'>;

export class Locals<S extends Session> {
  readonly registry = new Registry<S>();
  readonly index = new TopicIndex<S>();
  readonly watchers = new Presence<S>();
  /** `who` pages, cached until the registry, subscriptions or (after at most a second) states change. */
  readonly roster = new Roster<S>();
  readonly stats = new BrokerStats();
  /** The filters each session holds, in step with the index, the watchers and the roster. */
  readonly subscriptions: Subscriptions<S>;

  constructor(private readonly options: LocalsOptions) {
    this.subscriptions = new Subscriptions<S>({ index: this.index, presence: this.watchers, roster: this.roster }, options.maxSubscriptions);
  }

  /**
   * Hands a message of `topic` to every matching local subscriber once (but the one whose id is `skip`: a sender
   * that asked for no echo) through `push`; returns how many took it, counted as delivered.
   */
  fanOut(topic: string, skip: string, push: (subscriber: S) => boolean): number {
    const subscribers = this.index.match(topic);
    let delivered = 0;
    for (let i = 0; i < subscribers.length; i++) {
      const s = subscribers[i]!;
      if (skip !== '' && s.id === skip) continue;
      if (push(s)) delivered++;
    }
    this.stats.delivered += delivered;
    return delivered;
  }

  /**
   * Tells this process's watchers of `filter` a presence event about `subject` (the subject included, while it
   * watches), coalesced per watcher (presence.ts). Joins and leaves in a room over --room-announce-max are not told.
   */
  tell(event: PresenceEvent, subject: PresenceSubjectOf<S>, filter: string, old?: string): void {
    if (this.audience(event, filter) === 0) return;
    tellWatchers(this.watchers.watchers(filter), event, subject as Session, filter, old);
  }

  /** How many of this process's watchers a presence event on `filter` is told to. */
  audience(event: PresenceEvent, filter: string): number {
    if (event !== 'rename' && filter === this.options.room && this.roomIsQuiet()) return 0;
    return this.watchers.watchers(filter).size;
  }

  /** True when the chat room is too big to announce every login and logout. */
  roomIsQuiet(): boolean {
    const { room, roomAnnounceMax } = this.options;
    return room !== undefined && roomAnnounceMax !== undefined && this.watchers.watchers(room).size > roomAnnounceMax;
  }

  /** Every local client, or those a publish to concrete `topic` would reach, or those holding wildcard filter `topic` exactly. */
  clientsOf(topic?: string): S[] {
    if (topic === undefined) return [...this.registry.values()];
    return isWildcard(topic) ? [...this.index.subscribersOf(topic)] : [...this.index.match(topic)];
  }

  /**
   * Queues a direct for local client `target` within its budget for directs (a quarter of its mailbox): 'full' over
   * it; 'gone' when its mailbox takes nothing more (its connection is closing: the direct would never be written).
   */
  direct(target: S, out: Outgoing): 'queued' | 'full' | 'gone' {
    if (!target.mailbox.acceptsDirect(out.bytes)) {
      this.stats.directsRefused++;
      return 'full';
    }
    return target.mailbox.push(out) ? 'queued' : 'gone';
  }

  /** Answers `s` with an error; counted by code. */
  fail(s: S, err: ProtocolError): void {
    this.stats.countError(err.code);
    s.send(errorFrame(err));
  }
}

// Interest routing: which Redis channels this node listens on, so that it receives the messages of a topic only
// while one of its clients holds a filter that can match it (docs/cluster.md, "Interest routing").
// Each message is published on two channels: its topic's own (`sb:t:<topic>`) and its family's (`sb:f:<n>`, one of
// FAMILIES, by a hash of the topic's first level). A filter without wildcards listens on its topic's channel; a
// wildcard filter whose first level is literal (`sensors/+/temp`) listens on that level's family and the node drops
// the family's other topics; a filter starting with a wildcard (`+/x`, `#`) listens on every family: everything.
// A channel is subscribed when the first filter needing it arrives (requests of one event-loop turn share one
// SUBSCRIBE), and unsubscribed LINGER after the last one left (a client that resubscribes at once costs nothing).
// On a Redis Cluster the channels are sharded (SHARDED: SPUBLISH / SSUBSCRIBE, in the slot of the topic's partition).
import { isWildcard } from '../../protocol/topic.js';
import { fnv1a, PARTITIONS, partitionOf, partitionTag, topicPrefix } from './keys.js';

/** Families wildcard filters are routed by: a node with `a/#` receives 1/FAMILIES of the other topics' traffic. */
export const FAMILIES = 64;

export const INTEREST_CHANNELS = {
  topic: (topic: string) => `sb:t:${topic}`,
  family: (n: number) => `sb:f:${n}`,
} as const;

/** The family of a topic or filter: FNV-1a of its first level, mod FAMILIES. */
export function familyOf(topicOrFilter: string): number {
  const slash = topicOrFilter.indexOf('/');
  return fnv1a(topicOrFilter, slash < 0 ? topicOrFilter.length : slash) % FAMILIES;
}

/** The first level of a wildcard filter when it is literal (its family), else undefined (every family). */
function literalFamily(filter: string): number | undefined {
  const slash = filter.indexOf('/');
  const first = slash < 0 ? filter : filter.slice(0, slash);
  return first === '+' || first === '#' ? undefined : familyOf(first);
}

/**
 * How messages are routed to channels: the two a message is published on, and the ones a filter listens on (one of
 * them at least carries every topic the filter matches).
 */
export interface ChannelScheme {
  /** Sharded PUB/SUB (SPUBLISH / SSUBSCRIBE: a Redis Cluster) or classic. */
  readonly sharded: boolean;
  publish(topic: string): [topic: string, family: string];
  listen(filter: string): readonly string[];
}

/** One Redis: classic PUB/SUB, `sb:t:<topic>` and `sb:f:<family>`. */
export const CLASSIC: ChannelScheme = {
  sharded: false,
  publish: (topic) => [INTEREST_CHANNELS.topic(topic), INTEREST_CHANNELS.family(familyOf(topic))],
  listen(filter) {
    if (!isWildcard(filter)) return [INTEREST_CHANNELS.topic(filter)];
    const n = literalFamily(filter);
    return n === undefined ? EVERY_FAMILY : [INTEREST_CHANNELS.family(n)];
  },
};

const EVERY_FAMILY = Array.from({ length: FAMILIES }, (_, n) => INTEREST_CHANNELS.family(n));

/** Partition `k`'s channel of family `n` (sharded: in the partition's slot, like its topics' keys). */
const shardFamily = (k: number, n: number) => `sb:{${partitionTag(k)}}:f:${n}`;
const FAMILY_IN_EVERY_PARTITION = Array.from({ length: FAMILIES }, (_, n) => Array.from({ length: PARTITIONS }, (_, k) => shardFamily(k, n)));
const EVERY_SHARD_FAMILY = FAMILY_IN_EVERY_PARTITION.flat();

/**
 * A Redis Cluster: sharded PUB/SUB. Each channel carries its topic's partition tag, so it lives in the slot of the
 * topic's keys and the publish script SPUBLISHes it on the shard that numbered the message: `sb:{<p>}:t:<topic>`
 * and `sb:{<p>}:f:<family>`. A family spans every partition, so a wildcard filter listens on its family in each of
 * the PARTITIONS partitions (a filter starting with a wildcard: every family in every partition).
 */
export const SHARDED: ChannelScheme = {
  sharded: true,
  publish: (topic) => [`${topicPrefix(topic)}:t:${topic}`, shardFamily(partitionOf(topic), familyOf(topic))],
  listen(filter) {
    if (!isWildcard(filter)) return [`${topicPrefix(filter)}:t:${filter}`];
    const n = literalFamily(filter);
    return n === undefined ? EVERY_SHARD_FAMILY : FAMILY_IN_EVERY_PARTITION[n]!;
  },
};

/** The two channels a message of concrete `topic` is published on (one Redis). */
export function publishChannels(topic: string): [topic: string, family: string] {
  return CLASSIC.publish(topic);
}

/** The channels a node must listen on for `filter` (one Redis). */
export function channelsFor(filter: string): readonly string[] {
  return CLASSIC.listen(filter);
}

/** What Interest needs of the subscriber connection. */
export interface Listener {
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
}

interface Channel {
  /** Filters held on this node that need it. */
  wanted: number;
  state: 'subscribing' | 'on' | 'unsubscribing';
  /** When it is dropped once nobody wants it (state on, wanted 0). */
  dropAt: number;
  /** Resolved when it is on. */
  ready: Promise<void>;
  resolve: () => void;
  /** `ready` is resolved (a channel wanted again while being dropped needs a new one). */
  settled: boolean;
}

export interface InterestOptions {
  listener: Listener;
  /** How long a channel nobody wants stays subscribed. */
  lingerMs: number;
  /** Classic (one Redis, the default) or sharded (a Redis Cluster) channels. */
  scheme?: ChannelScheme;
  /** Channels just unsubscribed (the engine forgets what it knew of the topics they carried). */
  dropped: (channels: string[]) => void;
  /** A SUBSCRIBE or UNSUBSCRIBE failed (the connection dropped: its reconnection subscribes again). */
  failed: (err: Error) => void;
  now?: () => number;
}

export class Interest {
  private readonly channels = new Map<string, Channel>();
  private toSubscribe: string[] = [];
  private flushQueued = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private closed = false;
  private readonly scheme: ChannelScheme;

  constructor(private readonly o: InterestOptions) {
    this.now = o.now ?? Date.now;
    this.scheme = o.scheme ?? CLASSIC;
  }

  /** A filter got its first local subscriber. */
  want(filter: string): void {
    for (const name of this.scheme.listen(filter)) {
      const c = this.channels.get(name);
      if (c) {
        c.wanted++;
        if (c.state === 'unsubscribing' && c.settled) this.unsettle(c);
        continue;
      }
      const fresh = { wanted: 1, state: 'subscribing', dropAt: 0 } as Channel;
      this.unsettle(fresh);
      this.channels.set(name, fresh);
      this.toSubscribe.push(name);
    }
    if (this.toSubscribe.length > 0 && !this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  private unsettle(c: Channel): void {
    c.settled = false;
    c.ready = new Promise<void>((r) => (c.resolve = r));
  }

  private settle(c: Channel): void {
    c.settled = true;
    c.resolve();
  }

  /** A filter lost its last local subscriber. */
  release(filter: string): void {
    for (const name of this.scheme.listen(filter)) {
      const c = this.channels.get(name);
      if (!c || --c.wanted > 0) continue;
      c.dropAt = this.now() + this.o.lingerMs;
      this.scheduleSweep(this.o.lingerMs);
    }
  }

  /** Resolves once every channel `filter` needs is subscribed (at once when they are). */
  ready(filter: string): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const name of this.scheme.listen(filter)) {
      const c = this.channels.get(name);
      if (c && c.state !== 'on') pending.push(c.ready);
    }
    return pending.length === 0 ? Promise.resolve() : Promise.all(pending).then(() => undefined);
  }

  /** Whether messages of concrete `topic` reach this node now (a channel carrying them is subscribed). */
  receives(topic: string): boolean {
    const [t, f] = this.scheme.publish(topic);
    return this.channels.get(t)?.state === 'on' || this.channels.get(f)?.state === 'on';
  }

  /** Whether some channel carrying `topic` is subscribed, being subscribed, or being dropped. */
  covers(topic: string): boolean {
    const [t, f] = this.scheme.publish(topic);
    const a = this.channels.get(t);
    const b = this.channels.get(f);
    return (a !== undefined && a.state !== 'unsubscribing') || (b !== undefined && b.state !== 'unsubscribing');
  }

  /** Subscribed channels (for the inspection API and metrics). */
  get size(): number {
    return this.channels.size;
  }

  /** The channels subscribed or being subscribed, sorted (tests and the inspection API). */
  list(): string[] {
    return [...this.channels].filter(([, c]) => c.state !== 'unsubscribing').map(([n]) => n).sort();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.sweepTimer);
    for (const c of this.channels.values()) this.settle(c);
  }

  private flush(): void {
    this.flushQueued = false;
    const batch = this.toSubscribe;
    this.toSubscribe = [];
    if (batch.length === 0 || this.closed) return;
    const done = () => {
      for (const name of batch) {
        const c = this.channels.get(name);
        if (!c || c.state !== 'subscribing') continue;
        c.state = 'on';
        this.settle(c);
        // Nobody wanted it by the time it was on (its holders left while the SUBSCRIBE was out): dropped after its linger.
        if (c.wanted === 0) this.scheduleSweep(Math.max(0, c.dropAt - this.now()));
      }
    };
    // A failed SUBSCRIBE (connection lost) is retried by the connection's own resubscription when it is back; the
    // requests waiting go on (nothing can be published meanwhile that a gap fill would not bring).
    this.o.listener.subscribe(...batch).then(done, (err: Error) => {
      this.o.failed(err);
      done();
    });
  }

  private scheduleSweep(inMs: number): void {
    if (this.sweepTimer || this.closed) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweep();
    }, inMs);
    this.sweepTimer.unref();
  }

  /** Unsubscribes, in one command, every channel nobody has wanted for LINGER. */
  private sweep(): void {
    const now = this.now();
    const drop: string[] = [];
    let next = Infinity;
    for (const [name, c] of this.channels) {
      if (c.wanted > 0 || c.state !== 'on') continue;
      if (c.dropAt <= now) {
        c.state = 'unsubscribing';
        drop.push(name);
      } else next = Math.min(next, c.dropAt - now);
    }
    if (next !== Infinity) this.scheduleSweep(next);
    if (drop.length === 0) return;
    const after = (err?: Error) => {
      if (err) this.o.failed(err);
      const gone: string[] = [];
      for (const name of drop) {
        const c = this.channels.get(name);
        if (!c) continue;
        if (c.wanted > 0) {
          // Wanted again while it was being dropped: subscribed again (its waiters wait for that).
          c.state = 'subscribing';
          this.toSubscribe.push(name);
        } else {
          this.channels.delete(name);
          // Wanted again and released again while it was being dropped: its waiters (their holders gone) go on.
          if (!c.settled) this.settle(c);
          gone.push(name);
        }
      }
      if (this.toSubscribe.length > 0) this.flush();
      if (gone.length > 0) this.o.dropped(gone);
    };
    this.o.listener.unsubscribe(...drop).then(() => after(), after);
  }
}

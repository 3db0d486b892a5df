// ShardSubscribers: on a Redis Cluster, the node's sharded PUB/SUB. A message's channels carry its topic's partition
// tag (interest.ts SHARDED), so the publish script SPUBLISHes them on the shard that numbered it, and only the nodes
// subscribed on that shard receive it: no message crosses the cluster bus. Here: one subscriber connection per master
// that serves a slot of a channel this node listens on, SSUBSCRIBE grouped by slot (Redis wants one slot per command).
// The connections are this module's own (plain ioredis `Redis`, its public `ssubscribe` / `smessageBuffer`), not
// ioredis's Cluster `shardedSubscribers` group, for the same reason as connections.ts's ClusterSubscriber: the engine
// must know when a shard's subscriptions are live again (after a reconnect, a failover, a slot that moved), because
// then it fetches from the streams what it missed (`ready`). Every tick the slot table is refreshed and channels whose
// slot has another master now are moved there.
import type { Cluster, RedisOptions } from 'ioredis';
import { Redis } from 'ioredis';
import { keySlot } from './outcome.js';

/** How long subscribe() waits for a shard's connection to come up before it resolves all the same. */
const READY_WAIT_MS = 3000;

interface Shard {
  address: string;
  conn: Redis;
  channels: Set<string>;
  /** Connected and every channel of `channels` subscribed. */
  ready: boolean;
  waiters: (() => void)[];
}

export interface ShardEvents {
  /** A message on one of the channels. */
  message(channel: string, payload: string): void;
  /** A shard's subscriptions are live again (after its connection came up, or channels moved to it). */
  ready(address: string): void;
  /** A shard's connection closed (what it would have brought is fetched from the streams once it is back). */
  down(address: string): void;
  error(err: Error): void;
}

export class ShardSubscribers {
  /** Channel → the master it is subscribed on (or will be), undefined while the slot table has no owner. */
  private readonly channels = new Map<string, string | undefined>();
  private readonly shards = new Map<string, Shard>();
  private closed = false;

  constructor(
    private readonly cmd: Cluster,
    private readonly options: RedisOptions,
    private readonly on: ShardEvents,
  ) {}

  /** Every shard with channels is subscribed (for health and the barrier). */
  get ready(): boolean {
    for (const s of this.shards.values()) if (s.channels.size > 0 && !s.ready) return false;
    return true;
  }

  /** The masters this node holds sharded subscriptions on (address → channels), for tests and inspection. */
  get layout(): Map<string, number> {
    return new Map([...this.shards].map(([a, s]) => [a, s.channels.size]));
  }

  /** Resolves once the channels are subscribed on their masters (or READY_WAIT_MS passed with a master away). */
  async subscribe(...channels: string[]): Promise<void> {
    const send = new Map<Shard, string[]>();
    const wait = new Set<Shard>();
    for (const c of channels) {
      const owner = this.ownerOf(c);
      this.channels.set(c, owner);
      if (owner === undefined) continue; // placed by the next refresh
      const shard = this.shard(owner);
      shard.channels.add(c);
      if (shard.ready) push(send, shard, c);
      else wait.add(shard);
    }
    await Promise.all([...[...send].map(([s, cs]) => this.send(s, 'ssubscribe', cs)), ...[...wait].map((s) => this.whenReady(s))]);
  }

  async unsubscribe(...channels: string[]): Promise<void> {
    const send = new Map<Shard, string[]>();
    for (const c of channels) {
      const owner = this.channels.get(c);
      this.channels.delete(c);
      const shard = owner === undefined ? undefined : this.shards.get(owner);
      if (!shard?.channels.delete(c)) continue;
      if (shard.ready) push(send, shard, c);
    }
    await Promise.all([...send].map(([s, cs]) => this.send(s, 'sunsubscribe', cs)));
  }

  /**
   * Asks the cluster for its slot table, then moves each channel whose slot another master serves now (a failover,
   * a resharding) and reopens the connection of a master that is back; a shard that received channels says `ready`.
   */
  refresh(): void {
    if (this.closed) return;
    this.cmd.refreshSlotsCache(() => this.rebalance());
  }

  disconnect(): void {
    this.closed = true;
    for (const s of this.shards.values()) {
      s.conn.disconnect();
      for (const w of s.waiters.splice(0)) w();
    }
    this.shards.clear();
  }

  private ownerOf(channel: string): string | undefined {
    return this.cmd.slots[keySlot(channel)]?.[0];
  }

  private rebalance(): void {
    if (this.closed) return;
    const moved = new Map<Shard, string[]>();
    for (const [c, was] of this.channels) {
      const owner = this.ownerOf(c);
      if (owner === undefined || owner === was) continue;
      const old = was === undefined ? undefined : this.shards.get(was);
      if (old?.channels.delete(c) && old.ready) this.send(old, 'sunsubscribe', [c]).catch(() => undefined);
      this.channels.set(c, owner);
      const shard = this.shard(owner);
      shard.channels.add(c);
      if (shard.ready) push(moved, shard, c);
    }
    for (const [address, s] of this.shards) {
      if (s.channels.size === 0) {
        this.shards.delete(address);
        s.conn.disconnect();
        for (const w of s.waiters.splice(0)) w();
      } else if (s.conn.status === 'end') this.open(s);
    }
    for (const [s, cs] of moved) {
      this.send(s, 'ssubscribe', cs).then(
        () => this.on.ready(s.address),
        (err: Error) => this.on.error(err),
      );
    }
  }

  private shard(address: string): Shard {
    let s = this.shards.get(address);
    if (!s) {
      s = { address, conn: undefined as unknown as Redis, channels: new Set(), ready: false, waiters: [] };
      this.shards.set(address, s);
      this.open(s);
    }
    return s;
  }

  private open(s: Shard): void {
    const colon = s.address.lastIndexOf(':');
    const conn = new Redis({
      ...this.options,
      host: s.address.slice(0, colon),
      port: Number(s.address.slice(colon + 1)),
      lazyConnect: true,
      enableOfflineQueue: true,
      autoResubscribe: false, // subscribed here, before `ready` is told
      // A master that stays away is left to the slot table: a replica promoted in its place gets its channels.
      retryStrategy: (times: number) => (times > 10 ? null : Math.min(100 * times, 1000)),
    });
    s.conn = conn;
    s.ready = false;
    conn.on('error', (err: Error) => this.on.error(err));
    conn.on('smessageBuffer', (channel: Buffer, message: Buffer) => this.on.message(channel.toString(), message.toString()));
    conn.on('ready', () => void this.subscribed(s, conn));
    conn.on('close', () => {
      if (s.conn !== conn || !s.ready) return;
      s.ready = false;
      this.on.down(s.address);
    });
    conn.connect().catch(() => undefined); // failures arrive as error / close / end events
  }

  /**
   * The connection is (back) up: every channel of the shard subscribed again, then `ready`. Channels added while the
   * SSUBSCRIBE is in flight (a client's sub, a channel moved here: both wait for `ready` rather than send) go in the
   * next round: `ready` comes only once every channel the shard holds was sent (one was acked and never subscribed).
   */
  private async subscribed(s: Shard, conn: Redis): Promise<void> {
    const sent = new Set<string>();
    for (let todo = [...s.channels]; todo.length > 0; todo = [...s.channels].filter((c) => !sent.has(c))) {
      for (const c of todo) sent.add(c);
      try {
        await this.send(s, 'ssubscribe', todo);
      } catch (err) {
        // A slot moved away meanwhile (MOVED): the next refresh places its channels; the others are subscribed.
        this.on.error(err as Error);
      }
      if (s.conn !== conn || this.closed) return;
    }
    s.ready = true;
    for (const w of s.waiters.splice(0)) w();
    this.on.ready(s.address);
  }

  /**
   * SSUBSCRIBE / SUNSUBSCRIBE `channels` on the shard's connection, one command per slot. Channels whose SSUBSCRIBE
   * failed (MOVED: the slot table named a master that does not serve the slot yet, or no longer) are not subscribed
   * there: they are left unplaced, so the next refresh places them again, even on this same master once it serves
   * the slot (a refresh compares the owner with the master recorded for the channel, and would see no move).
   */
  private async send(s: Shard, command: 'ssubscribe' | 'sunsubscribe', channels: string[]): Promise<void> {
    const bySlot = new Map<number, string[]>();
    for (const c of channels) push(bySlot, keySlot(c), c);
    const groups = [...bySlot.values()];
    const results = await Promise.allSettled(groups.map((cs) => s.conn[command](...cs)));
    let failure: unknown;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      failure ??= r.reason;
      if (command === 'ssubscribe') this.unplace(s, groups[i]!);
    });
    if (failure !== undefined) throw failure;
  }

  /** Channels not subscribed on `s` after all: placed again by the next refresh. */
  private unplace(s: Shard, channels: string[]): void {
    for (const c of channels) {
      if (this.channels.get(c) !== s.address || !s.channels.delete(c)) continue;
      this.channels.set(c, undefined);
    }
  }

  private whenReady(s: Shard): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, READY_WAIT_MS);
      timer.unref();
      s.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

function push<K>(m: Map<K, string[]>, key: K, value: string): void {
  const list = m.get(key);
  if (list) list.push(value);
  else m.set(key, [value]);
}

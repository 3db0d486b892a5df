// ShardSubscribers (src/engine/redis/shards.ts) on its own, over two real redis-servers standing in for two masters
// of a Redis Cluster: the unit reads only the command connection's slot table (`slots`, `refreshSlotsCache`), which
// the test writes itself, so it can move a slot or point one at a master that is away without a cluster's slow
// failover. What is checked is what Redis says (PUBSUB SHARDCHANNELS, INFO commandstats) and what the unit tells the
// engine (messages, ready, down); never its internals. The layout of partitions over masters is checked too (keys.ts).
import type { Cluster } from 'ioredis';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FAMILIES, SHARDED } from '../../src/engine/redis/interest.js';
import { PARTITIONS, partitionTag } from '../../src/engine/redis/keys.js';
import { keySlot } from '../../src/engine/redis/outcome.js';
import { ShardSubscribers } from '../../src/engine/redis/shards.js';
import { redisCli, requireRedis, TestRedis, until } from './redis.js';

const run = requireRedis('shard subscribers', true);

/** The slot table as ioredis's Cluster keeps it (slot → [master address, …]), and its refresh (here: nothing to ask). */
class SlotTable {
  readonly slots: string[][] = Array.from({ length: 16384 }, () => []);
  refreshes = 0;
  assign(from: number, to: number, address: string | undefined): void {
    for (let s = from; s <= to; s++) this.slots[s] = address === undefined ? [] : [address];
  }
  refreshSlotsCache(callback: () => void): void {
    this.refreshes++;
    setImmediate(callback);
  }
}

/** What the unit told the engine. */
class Heard {
  readonly messages: [channel: string, payload: string][] = [];
  readonly ready: string[] = [];
  readonly down: string[] = [];
  readonly events = {
    message: (channel: string, payload: string) => this.messages.push([channel, payload]),
    ready: (address: string) => this.ready.push(address),
    down: (address: string) => this.down.push(address),
    error: () => undefined,
  };
}

const address = (r: TestRedis) => `127.0.0.1:${r.port}`;
const shardChannels = async (r: TestRedis) => (await redisCli(r.port, 'pubsub', 'shardchannels', 'sb:*')).split('\n').filter(Boolean).sort();
const ssubscribeCalls = async (r: TestRedis) => Number(/cmdstat_ssubscribe:calls=(\d+)/.exec(await redisCli(r.port, 'info', 'commandstats'))?.[1] ?? 0);
/** The family channel of `family` in partition `k` (what a wildcard filter listens on: SHARDED.listen). */
const familyIn = (k: number, family = 7) => `sb:{${partitionTag(k)}}:f:${family}`;

describe('partitions over masters (keys.ts)', () => {
  /** The slot ranges `redis-cli --cluster create` gives `masters` masters (its allocation, clusterManagerCommandCreate). */
  const createRanges = (masters: number) => {
    const ranges: [number, number][] = [];
    const per = 16384 / masters;
    let first = 0;
    let cursor = 0;
    for (let i = 0; i < masters; i++) {
      let last = Math.round(cursor + per - 1);
      if (last > 16384 || i === masters - 1) last = 16383;
      if (last < first) last = first;
      ranges.push([first, last]);
      first = last + 1;
      cursor += per;
    }
    return ranges;
  };
  /** How many partitions land on each master of such a cluster. */
  const spread = (masters: number) => {
    const ranges = createRanges(masters);
    const per = new Array<number>(masters).fill(0);
    for (let k = 0; k < PARTITIONS; k++) {
      const slot = keySlot(partitionTag(k));
      per[ranges.findIndex(([from, to]) => slot >= from && slot <= to)]!++;
    }
    return per;
  };

  it('each partition\'s tag hashes into its own band of slots, so masters with equal ranges get equal shares', () => {
    expect(createRanges(3)).toEqual([[0, 5460], [5461, 10922], [10923, 16383]]); // what the cluster tests run on
    const slots = Array.from({ length: PARTITIONS }, (_, k) => keySlot(partitionTag(k)));
    expect(new Set(slots).size).toBe(PARTITIONS);
    expect(slots).toEqual([...slots].sort((x, y) => x - y)); // ascending: partition k lies in band k
    for (const masters of [1, 2, 4, 8, 16, 32, 64]) expect(spread(masters)).toEqual(new Array(masters).fill(PARTITIONS / masters));
    // Masters that do not divide 64 (what `redis-cli --cluster create` makes for 3, 5, 6 masters): one apart at most.
    for (const masters of [3, 5, 6, 7]) {
      const per = spread(masters);
      expect(per.reduce((a, b) => a + b)).toBe(PARTITIONS);
      expect(Math.max(...per) - Math.min(...per)).toBeLessThanOrEqual(1);
    }
  });

  it('a wildcard filter listens on its family once per partition: its channels cover every slot band, one each', () => {
    const bands = (channels: readonly string[]) => new Set(channels.map((c) => Math.floor(keySlot(c) / (16384 / PARTITIONS))));
    expect(SHARDED.listen('sensors/+/temp')).toHaveLength(PARTITIONS);
    expect(bands(SHARDED.listen('sensors/+/temp')).size).toBe(PARTITIONS);
    // Every family in every partition for a filter starting with a wildcard: 64 per partition.
    const all = SHARDED.listen('+/temp');
    const band = (c: string) => Math.floor(keySlot(c) / (16384 / PARTITIONS));
    const perBand = new Map<number, number>();
    for (const c of all) perBand.set(band(c), (perBand.get(band(c)) ?? 0) + 1);
    expect(perBand.size).toBe(PARTITIONS);
    expect([...perBand.values()].every((n) => n === FAMILIES)).toBe(true);
  });
});

describe.skipIf(!run)('ShardSubscribers over two masters', () => {
  let a: TestRedis;
  let b: TestRedis;
  const open: ShardSubscribers[] = [];
  const pubs: Redis[] = [];
  /** Slots 0-8191 on a, 8192-16383 on b: partitions 0-31 on a, 32-63 on b. */
  const twoMasters = () => {
    const table = new SlotTable();
    table.assign(0, 8191, address(a));
    table.assign(8192, 16383, address(b));
    return table;
  };
  const start = (table: SlotTable, heard: Heard) => {
    const s = new ShardSubscribers(table as unknown as Cluster, { connectionName: 'shards-test' }, heard.events);
    open.push(s);
    return s;
  };
  /** SPUBLISH through `r`, as a publish script on that master does. */
  const spublish = async (r: TestRedis, channel: string, payload: string) => {
    const conn = new Redis(r.port, '127.0.0.1');
    pubs.push(conn);
    return conn.spublish(channel, payload);
  };

  beforeAll(async () => {
    [a, b] = await Promise.all([TestRedis.start(), TestRedis.start()]);
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.disconnect();
    for (const p of pubs.splice(0)) p.disconnect();
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('subscribe resolves once every channel is subscribed on its slot\'s master, one SSUBSCRIBE per slot', async () => {
    const heard = new Heard();
    const s = start(twoMasters(), heard);
    const [onA, onB] = [[familyIn(1), familyIn(1, 9), familyIn(2)], [familyIn(40), familyIn(63)]];
    const before = await Promise.all([ssubscribeCalls(a), ssubscribeCalls(b)]);
    await s.subscribe(...onA, ...onB);
    // Subscribed when the promise resolved: nothing published from now on can be missed.
    expect(await shardChannels(a)).toEqual([...onA].sort());
    expect(await shardChannels(b)).toEqual([...onB].sort());
    const after = await Promise.all([ssubscribeCalls(a), ssubscribeCalls(b)]);
    // a: partitions 1 and 2 (two slots: two commands); b: partitions 40 and 63.
    expect([after[0] - before[0], after[1] - before[1]]).toEqual([2, 2]);
    expect(s.ready).toBe(true);
    expect(s.layout).toEqual(new Map([[address(a), 3], [address(b), 2]]));
    expect(heard.ready.sort()).toEqual([address(a), address(b)].sort());

    await spublish(a, familyIn(1, 9), 'one');
    await spublish(b, familyIn(63), 'two');
    await spublish(b, familyIn(62), 'not listened to');
    await until(() => heard.messages.length >= 2, 'both messages');
    expect(heard.messages.sort()).toEqual([[familyIn(1, 9), 'one'], [familyIn(63), 'two']]);

    await s.unsubscribe(familyIn(1), familyIn(63), 'sb:{never}:t:subscribed');
    expect(await shardChannels(a)).toEqual([familyIn(1, 9), familyIn(2)].sort());
    expect(await shardChannels(b)).toEqual([familyIn(40)]);
  });

  it('a slot that moves to another master: the next refresh moves its channels there (gone from the old), then ready', async () => {
    const heard = new Heard();
    const table = twoMasters();
    const s = start(table, heard);
    await s.subscribe(familyIn(3), familyIn(4));
    expect(await shardChannels(a)).toEqual([familyIn(3), familyIn(4)].sort());
    heard.ready.length = 0;

    // Partition 3's slot is resharded to b (CLUSTER SETSLOT … NODE b); partition 4 stays on a.
    const slot = keySlot(familyIn(3));
    table.assign(slot, slot, address(b));
    s.refresh();
    await until(async () => heard.ready.includes(address(b)), 'b ready with the moved channel');
    expect(await shardChannels(b)).toEqual([familyIn(3)]);
    await until(async () => !(await shardChannels(a)).includes(familyIn(3)), 'the channel gone from a');
    expect(await shardChannels(a)).toEqual([familyIn(4)]);
    expect(s.layout).toEqual(new Map([[address(a), 1], [address(b), 1]]));
    await spublish(b, familyIn(3), 'after the move');
    await until(() => heard.messages.length === 1, 'the message through b');
    expect(heard.messages).toEqual([[familyIn(3), 'after the move']]);

    // The last channel of a master leaves it: the next refresh closes that connection.
    const slot4 = keySlot(familyIn(4));
    table.assign(slot4, slot4, address(b));
    s.refresh();
    await until(() => s.layout.size === 1, 'a\'s connection closed');
    expect(s.layout).toEqual(new Map([[address(b), 2]]));
  });

  it('a master restarted: down, then its channels are subscribed again on the new connection before ready', async () => {
    const heard = new Heard();
    const s = start(twoMasters(), heard);
    await s.subscribe(familyIn(5), familyIn(50));
    heard.ready.length = 0;

    await a.stop();
    await until(() => heard.down.includes(address(a)), 'a down');
    expect(s.ready).toBe(false);
    await a.restart(); // empty: it knows nothing of the old subscriptions
    await until(() => heard.ready.includes(address(a)), 'a ready again', 15_000);
    // Told ready only once subscribed again: a message published right after it arrives.
    expect(await shardChannels(a)).toEqual([familyIn(5)]);
    expect(s.ready).toBe(true);
    await spublish(a, familyIn(5), 'after the restart');
    await until(() => heard.messages.length === 1, 'the message');
    expect(heard.messages).toEqual([[familyIn(5), 'after the restart']]);
    expect(heard.down).toEqual([address(a)]); // b never went down
  });

  it('a master that is away when a channel is subscribed: subscribe does not wait for ever; once it is up the channel is subscribed there', async () => {
    const c = await TestRedis.start();
    try {
      await c.stop(); // its port stays this test's (freePort), nothing listens on it now
      const heard = new Heard();
      const table = twoMasters();
      const slot = keySlot(familyIn(6));
      table.assign(slot, slot, address(c));
      const s = start(table, heard);
      await s.subscribe(familyIn(6), familyIn(60));
      // Resolved while c is still away (its wait for c is bounded: the engine acks the sub; its catch-up covers the
      // topics it followed): c is started only below, so a subscribe that waited for it would never finish.
      expect(heard.ready).not.toContain(address(c));
      expect(s.ready).toBe(false);
      expect(await shardChannels(b)).toEqual([familyIn(60)]);

      await c.restart();
      await until(() => heard.ready.includes(address(c)), 'c ready', 15_000);
      expect(await shardChannels(c)).toEqual([familyIn(6)]);
      expect(s.ready).toBe(true);
    } finally {
      await c.stop();
    }
  }, 30_000);

  it('a channel whose slot has no master yet is placed by the refresh that finds one', async () => {
    const heard = new Heard();
    const table = twoMasters();
    const slot = keySlot(familyIn(7));
    table.assign(slot, slot, undefined);
    const s = start(table, heard);
    await s.subscribe(familyIn(7));
    expect(await shardChannels(a)).toEqual([]);
    table.assign(slot, slot, address(a));
    s.refresh();
    await until(() => heard.ready.includes(address(a)), 'a ready');
    expect(await shardChannels(a)).toEqual([familyIn(7)]);
  });
});

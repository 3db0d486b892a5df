// ShardSubscribers: a channel subscribed while its shard's connection is (re)subscribing (its 'ready' came, the
// SSUBSCRIBE of the shard's channels in flight) waits for the shard to be ready — and was never sent: the shard turned
// ready after the first SSUBSCRIBE, subscribe() resolved, the client's sub was acked, and the channel's messages from
// other nodes never came. Unlike test/cluster/shards.test.ts this one takes the unit's connection from its private
// map: the race is between the connection's 'ready' event and the unit's SSUBSCRIBE, which no public seam reaches.
import type { Cluster } from 'ioredis';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { partitionTag } from '../../src/engine/redis/keys.js';
import { ShardSubscribers } from '../../src/engine/redis/shards.js';
import { redisCli, requireRedis, TestRedis, until } from './redis.js';

const run = requireRedis('shard subscribers race', true);

class SlotTable {
  readonly slots: string[][] = Array.from({ length: 16384 }, () => []);
  assign(from: number, to: number, address: string): void {
    for (let s = from; s <= to; s++) this.slots[s] = [address];
  }
  refreshSlotsCache(callback: () => void): void {
    setImmediate(callback);
  }
}

describe.skipIf(!run)('ShardSubscribers: subscribe while the shard connection is subscribing', () => {
  let r: TestRedis;
  afterAll(async () => {
    await r?.stop();
  });

  it('a channel subscribed between the connection\'s ready and its SSUBSCRIBE reply is subscribed too', async () => {
    r = await TestRedis.start();
    const table = new SlotTable();
    table.assign(0, 16383, `127.0.0.1:${r.port}`);
    const messages: string[] = [];
    const s = new ShardSubscribers(table as unknown as Cluster, {}, {
      message: (c, p) => messages.push(`${c} ${p}`),
      ready: () => undefined,
      down: () => undefined,
      error: () => undefined,
    });
    const first = `sb:{${partitionTag(1)}}:t:first`;
    const second = `sb:{${partitionTag(1)}}:t:second`;
    const p1 = s.subscribe(first);
    // The shard was created by that call, its connection is connecting. Right after ShardSubscribers' own 'ready'
    // handler (registered first) sent the SSUBSCRIBE of `first`, a client's sub needs `second` on the same shard.
    const shard = (s as unknown as { shards: Map<string, { conn: Redis }> }).shards.get(`127.0.0.1:${r.port}`)!;
    let p2: Promise<void> | undefined;
    shard.conn.once('ready', () => {
      p2 = s.subscribe(second);
    });
    await p1;
    await p2; // resolved: the engine acknowledges the sub now
    const subscribed = (await redisCli(r.port, 'pubsub', 'shardchannels', 'sb:*')).split('\n').filter(Boolean).sort();
    expect(subscribed).toEqual([first, second].sort()); // `second` was missing
    const pub = new Redis(r.port, '127.0.0.1');
    await pub.spublish(second, 'hello');
    await until(() => messages.length > 0, 'the message on the second channel');
    pub.disconnect();
    s.disconnect();
    expect(messages).toEqual([`${second} hello`]);
  });
});

// Publish calls of one slot go out in the order made, also when one fails: a call that ioredis refuses unwritten
// with "Connection is closed." (here: redirected by MOVED to a master whose new connection is refused) goes into the Cluster's failover retry (retryDelayOnFailover,
// 100 ms, then a random master and redirects) unless it fails under a message of its own (outcome.ts sendWritten):
// a call of the same slot made after it goes out through Reach at once on the master's next ready connection, and
// would run first (a publish made later numbered before one made earlier). It must fail unsent, or run first.
import { connect, type Socket } from 'node:net';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisConnections } from '../../src/engine/redis/connections.js';
import { keySlot, NotSent, Reach, sendWritten } from '../../src/engine/redis/outcome.js';
import { redisCli, requireRedis, TestRedisCluster, until } from './redis.js';

const run = requireRedis('redis cluster publish order', true);
/** A stand-in for the publish script: numbers the calls of its slot in the order Redis runs them. */
const NUMBER = "return redis.call('INCR', KEYS[1])";

/** One raw command on a socket, its first reply line. */
function raw(sock: Socket, ...args: string[]): Promise<string> {
  return new Promise((resolve) => {
    sock.once('data', (d: Buffer) => resolve(d.toString().split('\r\n')[0]!));
    sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

describe.skipIf(!run)('Redis Cluster: publish calls of one slot keep the order they were made in', () => {
  let rc: TestRedisCluster;
  let cmd: Cluster;
  let holder: Socket | undefined;

  beforeAll(async () => {
    rc = await TestRedisCluster.start(3, 0);
  });
  afterAll(async () => {
    holder?.destroy();
    cmd?.disconnect();
    await rc?.stop();
  });

  it('a call redirected to a master whose connection fails is not sent again after a later call of its slot', async () => {
    const key = '{order}n';
    const slot = keySlot(key);
    const from = await rc.ownerOf(slot);
    const to = rc.ports.find((p) => p !== from)!;
    cmd = redisConnections(rc.url, 'sb-order', 3000).cmd as Cluster;
    const reach = new Reach(cmd, 3000);
    await cmd.connect();
    const call = async (): Promise<unknown> => {
      const go = await reach.when(key);
      if (!go) throw new Error('refused by Reach');
      return sendWritten(cmd, 'eval', [NUMBER, 1, key]);
    };
    expect(await call()).toBe(1);

    // The slot moves to `to` (ioredis still routes it to `from`, which redirects).
    const [fromId, toId] = (await Promise.all([redisCli(from, 'cluster', 'myid'), redisCli(to, 'cluster', 'myid')])).map((s) => s.trim()) as [string, string];
    await redisCli(to, 'cluster', 'setslot', String(slot), 'importing', fromId);
    await redisCli(from, 'cluster', 'setslot', String(slot), 'migrating', toId);
    await redisCli(from, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'keys', key);
    for (const p of [to, from, ...rc.ports.filter((x) => x !== to && x !== from)]) await redisCli(p, 'cluster', 'setslot', String(slot), 'node', toId);
    // ioredis has no open connection to `to` (a lazy one, or none), and `to` refuses new connections for now.
    const toConn = (): Redis | undefined => cmd.nodes('master').find((n) => n.options.port === to);
    if (toConn() && toConn()!.status !== 'wait') {
      for (const id of (await redisCli(to, 'client', 'list')).matchAll(/^id=(\d+) .* name=sb-order /gm)) await redisCli(to, 'client', 'kill', 'id', id[1]!);
      await until(() => !toConn() || toConn()!.status === 'wait', "the connection to the new owner gone");
    }
    holder = connect(to, '127.0.0.1');
    await new Promise((r) => holder!.once('connect', r));
    expect(await raw(holder, 'PING')).toBe('+PONG');
    await redisCli(to, 'config', 'set', 'maxclients', '1');
    let refused = false;
    cmd.on('-node', (n: Redis) => n.options.port === to && (refused = true));

    // A: sent at once (Reach: `from` is ready); `from` redirects it to `to`, whose new connection is refused.
    const a = call().then(
      (n) => ({ n }),
      (err: unknown) => ({ err }),
    );
    await until(() => refused, 'the connection to the new owner refused', 5000);
    // `to` takes connections again; B, made after A, goes through Reach.
    expect(await raw(holder, 'CONFIG', 'SET', 'maxclients', '10000')).toBe('+OK');
    const b = await call();
    const outcomeA = await a;
    // A either failed unsent (NotSent: never ran, answered unavailable) or ran before B.
    if ('err' in outcomeA) expect(outcomeA.err).toBeInstanceOf(NotSent);
    else expect({ a: outcomeA.n, b }).toEqual({ a: 2, b: 3 });
  }, 60_000);

  it('a call refused with TRYAGAIN (its slot between two masters) is not sent again after a later call of its slot', async () => {
    const [k1, k2] = ['{order2}a', '{order2}b'];
    const slot = keySlot(k1);
    const from = await rc.ownerOf(slot);
    const to = rc.ports.find((p) => p !== from)!;
    const conn = redisConnections(rc.url, 'sb-order2', 3000).cmd as Cluster;
    const reach = new Reach(conn, 3000);
    await conn.connect();
    try {
      // Both keys, as a publish call carries its topic's meta and history (one slot): numbered by the second.
      const call = async (): Promise<unknown> => {
        const go = await reach.when(k1);
        if (!go) throw new Error('refused by Reach');
        return sendWritten(conn, 'eval', ["redis.call('INCR', KEYS[1]) return redis.call('INCR', KEYS[2])", 2, k1, k2]);
      };
      expect(await call()).toBe(1);
      // The slot migrates: one key moved, the other not yet — Redis answers TRYAGAIN (it ran nothing).
      const [fromId, toId] = (await Promise.all([redisCli(from, 'cluster', 'myid'), redisCli(to, 'cluster', 'myid')])).map((x) => x.trim()) as [string, string];
      await redisCli(to, 'cluster', 'setslot', String(slot), 'importing', fromId);
      await redisCli(from, 'cluster', 'setslot', String(slot), 'migrating', toId);
      await redisCli(from, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'keys', k1);
      const a = call().then(
        (n) => ({ n }),
        (err: unknown) => ({ err }),
      );
      // A has its answer or waits in ioredis's delay queue: Redis counted a TRYAGAIN for it (its error stats).
      await until(async () => /errorstat_TRYAGAIN:count=[1-9]/.test(await redisCli(from, 'info', 'errorstats')), 'TRYAGAIN answered', 5000);
      // The migration ends; B, made after A, goes at once.
      await redisCli(from, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'keys', k2);
      for (const p of [to, from, ...rc.ports.filter((x) => x !== to && x !== from)]) await redisCli(p, 'cluster', 'setslot', String(slot), 'node', toId);
      const b = await call();
      const outcomeA = await a;
      // A either failed unsent (NotSent: never ran, answered unavailable) or ran before B.
      if ('err' in outcomeA) expect(outcomeA.err).toBeInstanceOf(NotSent);
      else expect({ a: outcomeA.n, b }).toEqual({ a: 2, b: 3 });
    } finally {
      conn.disconnect();
    }
  }, 60_000);
});

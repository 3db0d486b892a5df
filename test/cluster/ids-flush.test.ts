// Client ids across a Redis that lost its data (FLUSHALL, or a Redis Cluster shard restarted) without the connection
// closing: a node notices at its next tick. A spare id block reserved in between came from the restarted counter
// (1..10000, ids another node's live clients hold) and was handed out after the node re-initialised. Blocks are now
// reserved under the node's known life only, and a spare is dropped when the life is lost.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisNode, type NodeMembers } from '../../src/engine/redis/node.js';
import { redisCli, requireRedis, TestRedis, until } from './redis.js';

const run = requireRedis('cluster: client ids across Redis losing its data');
const log = pino({ level: 'silent' });
const members = (): NodeMembers => ({ count: () => 0, records: () => [], reasserted: () => {}, ticked: () => {}, lifeLost: () => {}, subscriber: () => {}, message: () => {} });

describe.skipIf(!run)('client ids after Redis lost its data', () => {
  let redis: TestRedis;
  const nodes: RedisNode[] = [];
  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    for (const n of nodes) await n.close(async () => undefined);
    await redis?.stop();
  });

  it('no client id is given twice across a FLUSHALL', async () => {
    const mk = async () => {
      const n = new RedisNode({ url: redis.url, log, nodeTtlMs: 6000, tickMs: 1500, connectTimeoutMs: 10_000, commandTimeoutMs: 3000 });
      n.attach(members());
      await n.start();
      nodes.push(n);
      return n;
    };
    const a = await mk();
    const b = await mk();
    const fromA = new Set<string>();
    for (let i = 0; i < 10; i++) fromA.add(a.ids.take()); // c1..c10: live clients of A
    const lifeBefore = b.life;
    await redisCli(redis.port, 'FLUSHALL');
    // B's clients connect right after (before its next tick): half of its block used, a spare is reserved.
    const fromB: string[] = [];
    for (let i = 0; i < 5001; i++) fromB.push(b.ids.take());
    await until(() => b.life !== lifeBefore && b.up, 'B re-initialised', 10_000);
    await until(() => a.life === b.life && a.up, 'A re-initialised', 10_000);
    for (let i = 0; i < 5100; i++) fromB.push(b.ids.take());
    const dup = fromB.filter((id) => fromA.has(id));
    expect(dup).toEqual([]);
  }, 30_000);

  it('a node that re-initialises first reserves no block that repeats the unused ids of a node that has not yet', async () => {
    const mk = async (tickMs: number) => {
      const n = new RedisNode({ url: redis.url, log, nodeTtlMs: 120_000, tickMs, connectTimeoutMs: 10_000, commandTimeoutMs: 3000 });
      n.attach(members());
      await n.start();
      nodes.push(n);
      return n;
    };
    await redisCli(redis.port, 'FLUSHALL');
    // A reserved its block first, B after it (B's ids are above A's); A checks the life often, B rarely.
    const a = await mk(100);
    const b = await mk(60_000);
    const fromB = new Set<string>();
    for (let i = 0; i < 10; i++) fromB.add(b.ids.take());
    const lifeBefore = a.life;
    await redisCli(redis.port, 'FLUSHALL');
    await until(() => a.life !== lifeBefore && a.up, 'A re-initialised under a new life', 10_000);
    // A hands out more than its block holds: its next block comes from the new life's counter (reserved once half of
    // the current one is used; waited for, so that no id is handed out past a block while Redis answers).
    const fromA = new Set<string>();
    for (let i = 0; i < 5_001; i++) fromA.add(a.ids.take());
    await until(() => a.ids.reservedUpTo > 10_000, "A's next block reserved", 10_000);
    for (let i = 0; i < 5_100; i++) fromA.add(a.ids.take());
    // B, not re-initialised yet, goes on handing out its block.
    for (let i = 0; i < 100; i++) fromB.add(b.ids.take());
    expect(b.life).toBe(lifeBefore);
    expect([...fromB].filter((id) => fromA.has(id))).toEqual([]);
  }, 30_000);
});

// A publish answered NOSCRIPT is not numbered after a later publish of the same client that ran meanwhile (found by a
// review helper). After a SCRIPT FLUSH, node A sends EVALSHA p1 and, behind it, EVALSHA p2 (one session's publishes go
// to Redis at once). p1 meets NOSCRIPT; another node's EVAL loads the script before p2 reaches Redis; p2 runs, and
// p1's retry used to run after it: p2 numbered before p1. Now p1 is retried only when no later call ran, else refused
// as not sent (`unavailable`: it did not run). A's replies are held back meanwhile: the time its NOSCRIPT is on the way.
import { beforeAll, describe, expect, it } from 'vitest';
import { KEYS } from '../../src/engine/redis/keys.js';
import { proxiedNodes, redisCli, RedisProxy, requireRedis, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('a NOSCRIPT retry overtaken');

describe.skipIf(!run)('a publish retried after NOSCRIPT is not overtaken by a later one that ran', () => {
  let redis: TestRedis;
  let proxy: RedisProxy;
  let a: TestBroker;
  let b: TestBroker;
  const nodes = proxiedNodes({ nodeTtlMs: 20_000 });
  beforeAll(() => void ({ redis, proxy, a, b } = nodes));

  it('p1 then p2 of one client: p1 is refused unavailable (it did not run) and p2 is the topic\'s first', async () => {
    const sub = await TestClient.connect(`${b.url}?topics=nos/x`);
    const pub = await TestClient.connect(a.url);
    const other = await TestClient.connect(b.url);
    // Both nodes have run the publish script (EVAL once, then EVALSHA).
    for (let i = 0; i < 2; i++) {
      expect(await pub.request({ op: 'pub', topic: `nos/warm${i}`, data: i })).toMatchObject({ op: 'ack' });
      expect(await other.request({ op: 'pub', topic: 'nos/other', data: i })).toMatchObject({ op: 'ack' });
    }
    await redisCli(redis.port, 'SCRIPT', 'FLUSH');

    proxy.holdReplies(); // A's answers are on their way back
    pub.send({ op: 'pub', topic: 'nos/x', data: 'first-p1', id: 'p1' });
    await until(() => proxy.forwarded('first-p1') && proxy.holdingReplies, 'p1 run by Redis (NOSCRIPT, answer held)');
    // Another node publishes: its EVALSHA meets NOSCRIPT, its EVAL loads the script into Redis.
    expect(await other.request({ op: 'pub', topic: 'nos/other', data: 'load' })).toMatchObject({ op: 'ack' });
    pub.send({ op: 'pub', topic: 'nos/x', data: 'second-p2', id: 'p2' });
    await until(() => proxy.forwarded('second-p2'), 'p2 sent to Redis (it runs: the script is loaded)');
    await until(async () => (await redisCli(redis.port, 'HGET', KEYS.meta('nos/x'), 'seq')) === '1', 'p2 run by Redis');
    proxy.releaseReplies();

    expect(await pub.next((f) => f.id === 'p1')).toMatchObject({ op: 'error', code: 'unavailable' });
    expect(await pub.next((f) => f.id === 'p2')).toMatchObject({ op: 'ack', seq: 1 });
    await sub.next((f) => f.op === 'msg' && f.data === 'second-p2');
    expect(sub.all.filter((f) => f.op === 'msg').map((m) => m.data)).toEqual(['second-p2']);
    sub.close();
    pub.close();
    other.close();
  });
});

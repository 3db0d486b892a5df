// A publish on a Redis Cluster whose master connection was not ready yet (ioredis opens it lazily, and queues the
// command offline: e.g. a master new to this node after a failover or a slot move) is written once the connection
// comes up. If it then times out, it may well have run: the answer is `outcome_unknown`, never `unavailable`, which
// promises the publish surely did not happen (a client without an idempotency key would publish it again).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maybeRan } from '../../src/engine/redis/outcome.js';
import { refusal } from '../../src/engine/redis/refusals.js';
import { requireRedis, TestRedis } from './redis.js';

const run = requireRedis('cluster: a command from an offline queue');

describe.skipIf(!run)('a command queued on a connection that was not ready', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(() => redis?.stop());

  it('that ran and then timed out is outcome_unknown', async () => {
    // The options ioredis gives a Redis Cluster master's connection, with the broker's timeout (short here).
    const node = new Redis({ port: redis.port, lazyConnect: true, enableOfflineQueue: true, maxRetriesPerRequest: 1, autoResendUnfulfilledCommands: false, commandTimeout: 300 });
    const sentReady = node.status === 'ready'; // what readyFor() sees for the slot's master
    expect(sentReady).toBe(false);
    // A script that writes, then takes longer than the command timeout (a slow Redis).
    const busy = "redis.call('SET', 'ran', '1'); local t = redis.call('TIME'); local s = t[1]*1e6+t[2]; repeat t = redis.call('TIME') until t[1]*1e6+t[2] - s > 600000; return 1";
    const err = await node.eval(busy, 0).then(() => undefined, (e: unknown) => e);
    expect(String((err as Error).message)).toMatch(/Command timed out/);
    const check = new Redis({ port: redis.port });
    expect(await check.get('ran')).toBe('1'); // it ran (the GET waits behind the script)
    check.disconnect();
    node.disconnect();
    expect(maybeRan(err, sentReady) ? 'outcome_unknown' : refusal(err)?.code).toBe('outcome_unknown'); // it was 'unavailable'
  });
});

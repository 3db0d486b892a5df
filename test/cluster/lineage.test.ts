// The lineage check of the publish script on one Redis (publish-script.ts): a topic's epoch is tied to the replication
// id it was started under, read from INFO or, on the usual call by SHA, from the lineage key, which is written without
// replication. A Redis that restarts from an RDB file written before its last messages must not continue their
// epoch: the file also holds the lineage key of before, and only the first call after the restart (which carries the
// script's text: the script cache is empty) rewrites it. The failover to a replica is failover-replica.test.ts.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { health, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { KEYS } from '../../src/engine/redis/keys.js';

const run = requireRedis('cluster: lineage after a restart from RDB');

const replid = async (admin: Redis) => /master_replid:(\w+)/.exec(await admin.info('replication'))![1]!;

describe.skipIf(!run)('cluster: Redis restarts from an RDB file that lacks the last messages', () => {
  let redis: TestRedis;
  let node: TestBroker;
  let admin: Redis;

  beforeAll(async () => {
    redis = await TestRedis.start();
    node = await startNode(redis);
    admin = new Redis(redis.url, { retryStrategy: () => 50 });
  });
  afterAll(async () => {
    admin?.disconnect();
    await node?.close();
    await redis?.stop();
  });

  it('the restarted Redis starts a new epoch for a topic saved mid-sequence: a resume from a lost position is recovered:false', async () => {
    const pub = await TestClient.connect(node.url);
    const sub = await TestClient.connect(node.url);
    const life = (await sub.request({ op: 'sub', topic: 'l' })).life;
    for (let i = 1; i <= 3; i++) await pub.request({ op: 'pub', topic: 'l', data: i });
    const before = await replid(admin);
    // The calls so far left the lineage key: the replication id they read.
    expect(await admin.get(KEYS.lineage)).toBe(before);
    await admin.save();
    // 4 and 5 are published and seen, but not in the file.
    for (let i = 4; i <= 5; i++) await pub.request({ op: 'pub', topic: 'l', data: i });
    const seen = await sub.next((f) => f.op === 'msg' && f.data === 5);
    expect(seen.seq).toBe(5);

    await redis.stop(true);
    await redis.restart(true);
    await until(async () => (await admin.get(KEYS.lineage).catch(() => null)) !== null, 'the restarted Redis loaded its file');
    // What the file held: seq 3 of the old epoch, and the lineage key of before, which is no longer this Redis's.
    expect(await admin.hget(KEYS.meta('l'), 'seq')).toBe('3');
    expect(await admin.get(KEYS.lineage)).toBe(before);
    expect(await replid(admin)).not.toBe(before);

    await until(async () => (await health(node)) === 'running', 'the broker on the restarted Redis', 15_000);
    // A publish the node refused as `unavailable` (it had not seen the restart through yet) surely did not run: again.
    let next = await pub.request({ op: 'pub', topic: 'l', data: 6 });
    for (let i = 0; next.op === 'error' && next.code === 'unavailable' && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 20));
      next = await pub.request({ op: 'pub', topic: 'l', data: 6 });
    }
    expect(next.op).toBe('ack');
    // Not seq 4 of the old epoch again (the messages 4 and 5 clients saw are gone): a new epoch.
    expect(next.epoch).not.toBe(seen.epoch);
    expect(next.seq).toBe(1);
    expect(await admin.get(KEYS.lineage)).toBe(await replid(admin));
    const resumer = await TestClient.connect(node.url);
    expect(await resumer.request({ op: 'sub', topic: 'l', since: seen.seq, epoch: seen.epoch, life })).toMatchObject({ recovered: false, missed: { l: 'epoch_changed' } });
    for (const c of [pub, sub, resumer]) c.close();
  }, 60_000);
});

// A Redis failover to a replica that lacks the last messages (replication is asynchronous): the promoted replica
// has a new replication id, so the next publish to such a topic starts a new epoch, and a client that saw the lost
// messages is told `recovered: false` instead of being passed over the new messages that reuse their seq numbers.
// The broker reaches Redis through a proxy the test points at the replica, as a failover (or a DNS switch) would.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { health, RedisProxy, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { KEYS } from '../../src/engine/redis/keys.js';

const run = requireRedis('cluster: failover to a replica');

describe.skipIf(!run)('cluster: Redis fails over to a replica that lost the last writes', () => {
  let primary: TestRedis;
  let replica: TestRedis;
  let proxy: RedisProxy;
  let node: TestBroker;
  const admins: Redis[] = [];

  beforeAll(async () => {
    primary = await TestRedis.start();
    replica = await TestRedis.start();
    proxy = await RedisProxy.start(primary.port);
    node = await startNode(primary, { redisUrl: proxy.url });
  });
  afterAll(async () => {
    for (const a of admins) a.disconnect();
    await node?.close();
    await proxy?.cut();
    await primary?.stop();
    await replica?.stop();
  });

  it('the promoted replica starts a new epoch: a resume from a lost position is recovered:false, never a silent skip', async () => {
    const p = new Redis(primary.url);
    const r = new Redis(replica.url);
    admins.push(p, r);
    await r.replicaof('127.0.0.1', String(primary.port));
    await until(async () => /master_link_status:up/.test(await r.info('replication')), 'replica in sync');

    const pub = await TestClient.connect(node.url);
    const sub = await TestClient.connect(node.url);
    const life = (await sub.request({ op: 'sub', topic: 'f' })).life;
    // A client of the wildcard `+` saw `other`'s message, then went away before f's (it has no position on f).
    const other = await pub.request({ op: 'pub', topic: 'other', data: 'o' });
    for (let i = 1; i <= 3; i++) await pub.request({ op: 'pub', topic: 'f', data: i });
    // 1..3 are on the replica: WAIT counts replicas that have this connection's last write, so it writes one after
    // the node's (the stream is in order); a WAIT without a write of its own returns at once, whatever is in flight.
    await p.set('test:fence', '1');
    expect(await p.wait(1, 5000)).toBe(1);
    // The primary's lineage key (publish-script.ts) is written without replication: the replica has everything else.
    expect(await p.get(KEYS.lineage)).toMatch(/^[0-9a-f]{40}$/);
    expect(await r.exists(KEYS.lineage)).toBe(0);
    expect(await r.hget(KEYS.meta('f'), 'seq')).toBe('3');
    // The replica is cut off (as a partition or a lagging link would), then 4 and 5 are published and seen.
    await r.replicaof('NO', 'ONE');
    for (let i = 4; i <= 5; i++) await pub.request({ op: 'pub', topic: 'f', data: i });
    const seen = await sub.next((f) => f.op === 'msg' && f.data === 5);
    expect(seen.seq).toBe(5);

    // Failover: the broker now reaches the replica (same life key: Redis did not "lose" everything, only 4 and 5).
    await proxy.cut();
    await proxy.restore(replica.port);
    await until(async () => (await health(node)) === 'running', 'the broker on the promoted replica', 15_000);
    const a6 = await pub.request({ op: 'pub', topic: 'f', data: 6 });
    const a7 = await pub.request({ op: 'pub', topic: 'f', data: 7 });
    // Not seq 4 and 5 of the old epoch again: a new epoch.
    expect(a6.epoch).not.toBe(seen.epoch);
    expect([a6.seq, a7.seq]).toEqual([1, 2]);
    const resumer = await TestClient.connect(node.url);
    const ack = await resumer.request({ op: 'sub', topic: 'f', since: seen.seq, epoch: seen.epoch, life });
    expect(ack).toMatchObject({ recovered: false, missed: { f: 'epoch_changed' } });
    // The wildcard's client resumes with its position on `other` and the same life: f restarted over an older sequence
    // (1..5, of which 4 and 5 are gone), so the broker cannot say it missed nothing there (it replayed 6 and 7 alone).
    const wild = await TestClient.connect(node.url);
    const wAck = await wild.request({ op: 'sub', topic: '+', since: { other: other.seq }, epoch: { other: other.epoch }, life });
    expect(wAck).toMatchObject({ recovered: false, missed: { f: 'unknown_position' } });
    expect(Object.keys(wAck.missed)).toEqual(['f']);
    // The live subscriber got the new epoch's messages too.
    expect((await sub.next((f) => f.op === 'msg' && f.data === 7)).epoch).toBe(a7.epoch);
    for (const c of [pub, sub, resumer, wild]) c.close();
  }, 60_000);
});

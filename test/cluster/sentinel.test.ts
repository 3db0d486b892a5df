// A cluster whose Redis is managed by Sentinel (`--redis redis+sentinel://host:port/<master name>`): every connection
// of a node finds the master through Sentinel, and when the master dies and Sentinel promotes its replica, the nodes
// follow: messages flow again between nodes, numbered in a new epoch (the replica's replication id is not the one the
// topic's epoch was started under), and a resume from before the failover is told `recovered: false`. The Sentinel
// asks for a password, which the URL gives (sentinelPassword).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { health, redisCli, requireRedis, startNode, TestSentinel, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('cluster: Redis through Sentinel');

/**
 * A request's answer once it is not `unavailable`: a node that is between masters refuses what it surely did not do,
 * and a client asks again (the same request: a publish with the same id).
 */
async function untilAvailable(request: () => Promise<Record<string, any>>): Promise<Record<string, any>> {
  for (let i = 0; ; i++) {
    const answer = await request();
    if (answer.op !== 'error' || answer.code !== 'unavailable' || i >= 200) return answer;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!run)('cluster: Redis through Sentinel, across a failover', () => {
  let sentinel: TestSentinel;
  let a: TestBroker;
  let b: TestBroker;

  beforeAll(async () => {
    // Its Sentinel asks for a password (requirepass): the nodes give it the URL's sentinelPassword (w%40tch%2Fer), at
    // start and again at each failover; without it they cannot start.
    sentinel = await TestSentinel.start({ sentinelPassword: 'w@tch/er' });
    a = await startNode(sentinel.master, { redisUrl: sentinel.url });
    b = await startNode(sentinel.master, { redisUrl: sentinel.url });
  }, 30_000);
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await sentinel?.stop();
  });

  /** The node connections (named sb-<node>…) a Redis has, by role: '' commands, -sub, -calls-sub, -hb. */
  const roles = async (port: number) => {
    const admin = new Redis(port, '127.0.0.1');
    try {
      const list = (await admin.client('LIST')) as string;
      return list.split('\n').map((l) => /\bname=(sb-\S*)/.exec(l)?.[1]).filter((n): n is string => n !== undefined).map((n) => n.replace(/^sb-[0-9a-f]+/, '')).sort();
    } finally {
      admin.disconnect();
    }
  };
  const EVERY_ROLE = ['', '', '-calls-sub', '-calls-sub', '-hb', '-hb', '-sub', '-sub'];
  const same = (a: string[], b: string[]) => JSON.stringify(a) === JSON.stringify(b);


  it('the nodes reach the master Sentinel names, and follow it to the promoted replica', async () => {
    await until(async () => same(await roles(sentinel.master.port), EVERY_ROLE), 'every connection of both nodes on the master');

    const sub = await TestClient.connect(b.url);
    const pub = await TestClient.connect(a.url);
    const life = (await sub.request({ op: 'sub', topic: 's/t' })).life;
    const before = await pub.request({ op: 'pub', topic: 's/t', data: 'before', id: 'p1' });
    expect(before).toMatchObject({ op: 'ack', seq: 1 });
    expect(await sub.next((f) => f.op === 'msg' && f.data === 'before')).toMatchObject({ seq: 1, epoch: before.epoch });

    await sentinel.failover();
    // Every connection of both nodes moves to the promoted replica: commands, subscribers, heartbeat threads.
    await until(async () => same(await roles(sentinel.replica.port), EVERY_ROLE), 'every connection of both nodes on the promoted replica', 20_000);
    await until(async () => (await health(a)) === 'running' && (await health(b)) === 'running', 'both nodes running again', 20_000);

    // A publish refused as `unavailable` surely did not run: again, with the same id, until the node has its master.
    const after = await untilAvailable(() => pub.request({ op: 'pub', topic: 's/t', data: 'after', id: 'p2' }));
    expect(after.op).toBe('ack');
    // The promoted replica has another replication id: a new epoch, never seq 2 of the old one.
    expect(after.epoch).not.toBe(before.epoch);
    expect(await sub.next((f) => f.op === 'msg' && f.data === 'after')).toMatchObject({ seq: after.seq, epoch: after.epoch });
    const resumer = await TestClient.connect(b.url);
    expect(await untilAvailable(() => resumer.request({ op: 'sub', topic: 's/t', since: 1, epoch: before.epoch, life }))).toMatchObject({ recovered: false, missed: { 's/t': 'epoch_changed' } });
    for (const c of [sub, pub, resumer]) c.close();
  }, 60_000);

  it('a master failed over while alive (SENTINEL FAILOVER) is left as soon as Sentinel names its successor', async () => {
    // The killed master comes back empty, as a replica of the promoted one; Sentinel promotes it back.
    const back = sentinel.master;
    await back.restart();
    // (As Sentinel would make it, sooner.)
    await redisCli(back.port, 'REPLICAOF', '127.0.0.1', String(sentinel.replica.port));
    await until(async () => /master_link_status:up/.test(await redisCli(back.port, 'INFO', 'replication')), 'the old master back, as a replica', 20_000);
    // The master being replaced refuses to be made a replica (its default user may not REPLICAOF), so Sentinel never
    // closes the nodes' connections to it: they can only leave it because Sentinel announced its successor
    // (+switch-master). Without that, they kept writing to it until Sentinel demoted it (8–9 s here). The heartbeat
    // thread's connection moves with them (told by the commands connection's watch).
    const old = sentinel.replica;
    await redisCli(old.port, 'ACL', 'SETUSER', 'default', '-replicaof', '-slaveof');
    await sentinel.failoverTo(back.port);
    await until(async () => same(await roles(back.port), EVERY_ROLE), 'every connection of both nodes on the new master', 20_000);
    expect(await roles(old.port)).toEqual([]);
    expect(await redisCli(old.port, 'INFO', 'replication')).toMatch(/^role:master$/m);
    const sub = await TestClient.connect(b.url);
    const pub = await TestClient.connect(a.url);
    expect(await untilAvailable(() => sub.request({ op: 'sub', topic: 's/u' }))).toMatchObject({ op: 'ack' });
    expect(await untilAvailable(() => pub.request({ op: 'pub', topic: 's/u', data: 'on the new master', id: 'p3' }))).toMatchObject({ op: 'ack', seq: 1 });
    expect(await sub.next((f) => f.op === 'msg' && f.topic === 's/u')).toMatchObject({ data: 'on the new master', seq: 1 });
    for (const c of [sub, pub]) c.close();
  }, 60_000);
});


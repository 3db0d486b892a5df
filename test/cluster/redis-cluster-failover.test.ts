// A Redis Cluster master fails over to its replica (3 masters, 1 replica each, cluster-node-timeout 1 s): the
// broker stays up (degraded on /healthz while the master is gone), publishes to the dead master's slots fail (`unavailable` or `outcome_unknown`) until the replica is promoted and
// then work again, in a new epoch (the promoted replica's replication id differs: whatever it may lack, no seq is
// given twice), so a resume from before the failover is recovered:false; a topic on another shard goes on as if
// nothing happened.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS } from '../../src/engine/redis/keys.js';
import { health, redisCli, requireRedis, startNode, TestRedisCluster, until } from './redis.js';
import { SHARDED } from '../../src/engine/redis/interest.js';
import { TestClient, type Frame } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('redis cluster failover', true);

describe.skipIf(!run)('Redis Cluster: a master fails over to its replica', () => {
  let rc: TestRedisCluster;
  let node: TestBroker;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    rc = await TestRedisCluster.start(3, 1);
    node = await startNode(rc, { historySize: 50 });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await node?.close();
    await rc?.stop();
  });

  it('publishes to the failed shard come back in a new epoch (resume: recovered:false); another shard is untouched', async () => {
    // A topic on a master that does not hold the cluster-wide keys ({g}), and one on another master.
    const gOwner = await rc.ownerOf(await rc.keyslot(KEYS.nodes));
    let doomed: { topic: string; port: number } | undefined;
    let safe: { topic: string; port: number } | undefined;
    for (let i = 0; (!doomed || !safe) && i < 500; i++) {
      const topic = `fo/t${i}`;
      const port = await rc.ownerOf(await rc.keyslot(KEYS.meta(topic)));
      if (port === gOwner) continue;
      if (!doomed) doomed = { topic, port };
      else if (port !== doomed.port && !safe) safe = { topic, port };
    }
    if (!safe) safe = { topic: 'fo/g', port: gOwner }; // the {g} master itself then
    const pub = await TestClient.connect(node.url);
    const sub = await TestClient.connect(node.url);
    clients.push(pub, sub);
    const life = (await sub.request({ op: 'sub', topic: doomed!.topic })).life;
    await sub.request({ op: 'sub', topic: safe.topic });
    for (let i = 1; i <= 3; i++) {
      await pub.request({ op: 'pub', topic: doomed!.topic, data: i });
      await pub.request({ op: 'pub', topic: safe.topic, data: i });
    }
    const before = await sub.next((f) => f.op === 'msg' && f.topic === doomed!.topic && f.data === 3);
    await rc.syncedReplicaOf(doomed!.port); // nothing is lost here: the new epoch is the price of not knowing that

    await rc.kill(doomed!.port);
    await until(async () => (await health(node)) === 'degraded', '/healthz degraded while a master is down', 15_000);
    // Until the replica is promoted the shard's publishes fail: `unavailable`, or `outcome_unknown` where ioredis
    // cannot tell a command never sent from one lost in flight ("Connection is closed"). None of them ran on the
    // promoted replica: its first publish below is seq 1 of a new epoch.
    let after: Frame | undefined;
    const refused: string[] = [];
    await until(async () => {
      // Its answer may rightly take seconds: ioredis's retries while the slot has no master (~1 s), then, acked, the
      // wait for the message to reach this node (its subscriber still on the dead master until a tick moves it: up
      // to 2 s, then read from the stream). Seen over 3 s on a loaded machine (load ~25 on 2 cores).
      const reply = await pub.request({ op: 'pub', topic: doomed!.topic, data: 'after' }, 15_000);
      if (reply.op === 'ack') after = reply;
      else refused.push(reply.code);
      return after !== undefined;
    }, 'the promoted replica to take publishes', 30_000);
    expect(refused.every((code) => code === 'unavailable' || code === 'outcome_unknown')).toBe(true);
    expect(after).toMatchObject({ seq: 1 });
    expect(after!.epoch).not.toBe(before.epoch);
    // Every slot has a working master again (the replica): /healthz is running again.
    await until(async () => (await health(node)) === 'running', '/healthz running after the failover', 20_000);

    const resumer = await TestClient.connect(node.url);
    clients.push(resumer);
    const ack = await resumer.request({ op: 'sub', topic: doomed!.topic, since: before.seq, epoch: before.epoch, life });
    expect(ack).toMatchObject({ recovered: false, missed: { [doomed!.topic]: 'epoch_changed' } });
    // The other shard's topic kept its epoch and numbering; the live subscriber got both.
    const s4 = await pub.request({ op: 'pub', topic: safe.topic, data: 4 });
    expect(s4).toMatchObject({ seq: 4 });
    await sub.next((f) => f.op === 'msg' && f.topic === doomed!.topic && f.data === 'after', 15_000);
    await sub.next((f) => f.op === 'msg' && f.topic === safe!.topic && f.data === 4, 15_000);
    // Sharded PUB/SUB: the node's subscription to the topic's channel moved to the promoted replica (the slot table
    // names it), and a burst there reaches the subscriber gapless, in the new epoch's order.
    const [channel] = SHARDED.publish(doomed!.topic);
    const alive = rc.ports.filter((p) => p !== doomed!.port);
    await until(
      async () => (await Promise.all(alive.map((p) => redisCli(p, 'pubsub', 'shardchannels', channel)))).some((l) => l.trim() === channel),
      'the channel subscribed on the promoted replica',
      15_000,
    );
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => pub.request({ op: 'pub', topic: doomed!.topic, data: `burst ${i}` }, 15_000)));
    expect(burst.map((f) => f.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    await sub.next((f) => f.op === 'msg' && f.topic === doomed!.topic && f.data === 'burst 19', 15_000);
    const got = sub.all.filter((f) => f.op === 'msg' && f.topic === doomed!.topic && f.epoch === after!.epoch);
    expect(got.map((f) => f.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
  }, 90_000);
});

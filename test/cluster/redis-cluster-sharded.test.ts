// Sharded PUB/SUB on a Redis Cluster (docs/cluster.md, "Sharded PUB/SUB"): three brokers in this process on a 3-master
// cluster the test starts itself. Messages travel on sharded channels (SSUBSCRIBE / SPUBLISH from the publish script):
// what each shard's Redis says (PUBSUB SHARDCHANNELS, PUBSUB CHANNELS, CLUSTER INFO's cluster-bus counters) and what
// each broker says on /metrics, never the brokers' internals. A node with a subscriber of T receives T's messages over
// T's shard only; a node without interest receives nothing; a burst over many topics on all shards arrives gapless and
// in seq order, to exact and wildcard subscribers alike; no message crosses the cluster bus.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metric, redisCli, requireRedis, startNode, TestRedisCluster, until } from './redis.js';
import { TestClient, type Frame } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { SHARDED } from '../../src/engine/redis/interest.js';

const run = requireRedis('redis cluster sharded pub/sub', true);

const received = (n: TestBroker) => metric(n, 'switchboard_cluster_messages_received_total');
const msgs = (c: TestClient, topic: string) => c.all.filter((f) => f.op === 'msg' && f.topic === topic);

describe.skipIf(!run)('Redis Cluster: sharded PUB/SUB', () => {
  let rc: TestRedisCluster;
  let a: TestBroker;
  let b: TestBroker;
  let c: TestBroker;
  /** 30 topics, ten on each master. */
  const topics: string[] = [];
  const ownerOf = new Map<string, number>();
  const clients: TestClient[] = [];
  const connect = async (node: TestBroker) => {
    const cl = await TestClient.connect(node.url);
    clients.push(cl);
    return cl;
  };
  /** Sharded channels subscribed on the master at `port` (PUBSUB SHARDCHANNELS), and the classic ones (PUBSUB CHANNELS). */
  const shardChannels = async (port: number, pattern = 'sb:*') => (await redisCli(port, 'pubsub', 'shardchannels', pattern)).split('\n').filter(Boolean);
  const classicChannels = async (port: number) => (await redisCli(port, 'pubsub', 'channels', 'sb:[tf]:*')).split('\n').filter(Boolean);
  /** Classic PUBLISHes this master forwarded to the others over the cluster bus. */
  const busPublishes = async (port: number) => Number(/cluster_stats_messages_publish_sent:(\d+)/.exec(await redisCli(port, 'cluster', 'info'))?.[1] ?? 0);

  beforeAll(async () => {
    rc = await TestRedisCluster.start();
    const per = new Map<number, number>();
    for (let i = 0; topics.length < 30 && i < 1000; i++) {
      const topic = `burst/t${i}`;
      const port = await rc.ownerOf(await rc.keyslot(KEYS.meta(topic)));
      if ((per.get(port) ?? 0) >= 10) continue;
      per.set(port, (per.get(port) ?? 0) + 1);
      topics.push(topic);
      ownerOf.set(topic, port);
    }
    [a, b, c] = (await Promise.all([0, 1, 2].map(() => startNode(rc, { historySize: 200, interestLingerMs: 100 })))) as [TestBroker, TestBroker, TestBroker];
  }, 60_000);
  afterAll(async () => {
    for (const cl of clients) cl.close();
    await Promise.all([a, b, c].map((n) => n?.close()));
    await rc?.stop();
  }, 30_000);

  it('a topic\'s channels are in its keys\' slot; the partitions spread over the three masters', async () => {
    expect(new Set(ownerOf.values())).toEqual(new Set(rc.ports));
    for (const t of topics.slice(0, 6)) {
      const slot = await rc.keyslot(KEYS.meta(t));
      for (const ch of SHARDED.publish(t)) expect(await rc.keyslot(ch)).toBe(slot);
      expect(await rc.keyslot(KEYS.pubKey(t, 'k'))).toBe(slot);
    }
  });

  it('a subscriber of T makes its node SSUBSCRIBE T\'s channel on T\'s shard only; the messages come that way, the idle node gets none', async () => {
    const t = topics[0]!;
    const sub = await connect(b);
    await sub.request({ op: 'sub', topic: t });
    const [channel] = SHARDED.publish(t);
    const home = ownerOf.get(t)!;
    expect(await shardChannels(home, 'sb:*:t:*')).toEqual([channel]);
    for (const port of rc.ports) {
      if (port !== home) expect(await shardChannels(port, 'sb:*:t:*')).toEqual([]);
      expect(await classicChannels(port)).toEqual([]); // nothing on classic message channels any more
      expect(Number((await redisCli(port, 'pubsub', 'shardnumsub', channel)).split('\n')[1] ?? 0)).toBe(port === home ? 1 : 0);
    }
    const pub = await connect(a);
    const [b0, c0] = [await received(b), await received(c)];
    for (let i = 0; i < 20; i++) await pub.request({ op: 'pub', topic: t, data: i });
    await until(() => msgs(sub, t).length === 20, 'the 20 messages on node B');
    expect(msgs(sub, t).map((f) => f.data)).toEqual([...Array(20).keys()]);
    expect((await received(b)) - b0).toBe(20);
    // Node C has no client: no channel, nothing received (a ping on C is a barrier through every master).
    const idle = await connect(c);
    expect((await idle.request({ op: 'ping' })).op).toBe('pong');
    expect((await received(c)) - c0).toBe(0);
    expect(await metric(c, 'switchboard_cluster_channels')).toBe(0);
    await sub.request({ op: 'unsub', topic: t });
    await until(async () => (await shardChannels(home, 'sb:*:t:*')).length === 0, 'the channel dropped after the linger', 5000);
  });

  it('a burst over 30 topics on all shards from two nodes: gapless seq in order, exact and wildcard subscribers, nothing over the cluster bus', async () => {
    const exact = await connect(b);
    for (const t of topics) await exact.request({ op: 'sub', topic: t });
    const wild = await connect(c);
    await wild.request({ op: 'sub', topic: 'burst/+' });
    const every = await connect(c);
    await every.request({ op: 'sub', topic: '+/#' });
    // `burst/+` listens on its family in every partition: on every master.
    for (const port of rc.ports) expect((await shardChannels(port, 'sb:*:f:*')).length).toBeGreaterThan(0);
    const pubA = await connect(a);
    const pubB = await connect(b);
    const bus0 = await Promise.all(rc.ports.map(busPublishes));
    const N = 20;
    const acks: Promise<Frame>[] = [];
    // Pipelined: every publish sent before any ack is read.
    for (let i = 0; i < N; i++) {
      for (const t of topics) acks.push((i % 2 === 0 ? pubA : pubB).request({ op: 'pub', topic: t, data: i }));
    }
    const answered = await Promise.all(acks);
    expect(answered.every((f) => f.op === 'ack')).toBe(true);
    for (const s of [exact, wild, every]) {
      await until(() => topics.every((t) => msgs(s, t).length >= N), 'every message on every subscriber', 20_000);
      for (const t of topics) {
        const first = msgs(s, t)[0]!.seq as number; // topics[0] had 20 messages before
        expect(msgs(s, t).map((f) => f.seq)).toEqual([...Array(N).keys()].map((i) => first + i));
        // Each publisher's messages in its order (two publishers on two nodes interleave as Redis numbered them).
        const data = msgs(s, t).map((f) => f.data as number);
        expect(data.filter((d) => d % 2 === 0)).toEqual([...Array(N / 2).keys()].map((i) => 2 * i));
        expect(data.filter((d) => d % 2 === 1)).toEqual([...Array(N / 2).keys()].map((i) => 2 * i + 1));
      }
    }
    // The messages were SPUBLISHed on their own shards: no master forwarded a classic PUBLISH meanwhile.
    expect(await Promise.all(rc.ports.map(busPublishes))).toEqual(bus0);
    // (The counter does count: one classic PUBLISH is forwarded to the two other masters.)
    await redisCli(rc.ports[0]!, 'publish', 'sb:test', 'x');
    expect(await busPublishes(rc.ports[0]!)).toBe(bus0[0]! + 2);
    // A pong proves every message was queued before it (the barrier goes through every shard's sharded connection).
    expect((await exact.request({ op: 'ping' })).op).toBe('pong');
    expect(exact.all.filter((f) => f.op === 'msg').length).toBe(topics.length * N);
  }, 60_000);

  it('a resume on another node after a disconnect gets exactly the missed messages of topics on every shard', async () => {
    const some = rc.ports.flatMap((port) => topics.filter((t) => ownerOf.get(t) === port).slice(0, 3));
    const sub = await connect(a);
    const ack = await sub.request({ op: 'sub', topic: 'burst/#' });
    const pub = await connect(b);
    for (const t of some) await pub.request({ op: 'pub', topic: t, data: `before ${t}` });
    const seen = await Promise.all(some.map((t) => sub.next((f) => f.op === 'msg' && f.topic === t && f.data === `before ${t}`)));
    sub.close();
    for (const t of some) await pub.request({ op: 'pub', topic: t, data: `missed ${t}` });
    const back = await connect(c);
    const r = await back.request({
      op: 'sub',
      topic: 'burst/#',
      since: Object.fromEntries(seen.map((m) => [m.topic, m.seq])),
      epoch: Object.fromEntries(seen.map((m) => [m.topic, m.epoch])),
      life: ack.life,
    });
    expect(r).toMatchObject({ recovered: true });
    for (const t of some) await back.next((f) => f.op === 'msg' && f.topic === t && f.data === `missed ${t}`);
    for (const t of some) expect(msgs(back, t).map((f) => f.data)).toEqual([`missed ${t}`]);
  });
});

describe.skipIf(!run)('Redis Cluster: sharded PUB/SUB while a slot moves (resharding)', () => {
  let rc: TestRedisCluster;
  let node: TestBroker;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    rc = await TestRedisCluster.start();
    node = await startNode(rc, { historySize: 200 });
  }, 60_000);
  afterAll(async () => {
    for (const cl of clients) cl.close();
    await node?.close();
    await rc?.stop();
  }, 30_000);

  it('the topic\'s slot migrates to another master: the channel follows it and the subscriber gets every message in order', async () => {
    const topic = 'move/t';
    const slot = await rc.keyslot(KEYS.meta(topic));
    const from = await rc.ownerOf(slot);
    const to = rc.ports.find((p) => p !== from)!;
    const [channel] = SHARDED.publish(topic);
    const sub = await TestClient.connect(node.url);
    const pub = await TestClient.connect(node.url);
    clients.push(sub, pub);
    await sub.request({ op: 'sub', topic });
    for (let i = 0; i < 5; i++) await pub.request({ op: 'pub', topic, data: i });
    await sub.next((f) => f.op === 'msg' && f.data === 4);
    // Redis's own resharding steps for one slot: IMPORTING / MIGRATING, MIGRATE its keys, then SETSLOT NODE everywhere.
    const [fromId, toId] = await Promise.all([redisCli(from, 'cluster', 'myid'), redisCli(to, 'cluster', 'myid')]);
    await redisCli(to, 'cluster', 'setslot', String(slot), 'importing', fromId.trim());
    await redisCli(from, 'cluster', 'setslot', String(slot), 'migrating', toId.trim());
    const keys = (await redisCli(from, 'cluster', 'getkeysinslot', String(slot), '1000')).split('\n').filter(Boolean);
    expect(keys.length).toBeGreaterThan(0);
    await redisCli(from, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'keys', ...keys);
    for (const p of [to, from, ...rc.ports.filter((x) => x !== to && x !== from)]) await redisCli(p, 'cluster', 'setslot', String(slot), 'node', toId.trim());
    // Published on the new owner (ioredis follows MOVED); the node moves its subscription within a tick or two.
    const acks: Frame[] = [];
    for (let i = 5; i < 25; i++) acks.push(await pub.request({ op: 'pub', topic, data: i }));
    expect(acks.every((f) => f.op === 'ack')).toBe(true);
    await until(async () => (await redisCli(to, 'pubsub', 'shardchannels', channel)).trim() === channel, 'the channel subscribed on the new owner', 15_000);
    expect((await redisCli(from, 'pubsub', 'shardchannels', channel)).trim()).toBe('');
    await sub.next((f) => f.op === 'msg' && f.data === 24, 15_000);
    expect(msgs(sub, topic).map((f) => f.data)).toEqual([...Array(25).keys()]);
    // The migrated meta carries the old master's replication id: the new owner starts the topic in a new epoch, as
    // after a failover (a resume from before it answers recovered: false), numbered from 1 without a gap.
    const seqs = msgs(sub, topic).map((f) => `${f.epoch === acks[0]!.epoch ? 'new' : 'old'} ${f.seq}`);
    expect(seqs).toEqual([...[1, 2, 3, 4, 5].map((n) => `old ${n}`), ...Array.from({ length: 20 }, (_, i) => `new ${i + 1}`)]);
  }, 60_000);

  it('publishing while the topic\'s slot migrates: each publish acked or unavailable, the acked ones reach the subscriber once, in order, gapless per epoch; a resume from before the move is recovered: false', async () => {
    const topic = 'moving/live';
    const slot = await rc.keyslot(KEYS.meta(topic));
    const from = await rc.ownerOf(slot);
    const to = rc.ports.find((p) => p !== from)!;
    const sub = await TestClient.connect(node.url);
    const pub = await TestClient.connect(node.url);
    clients.push(sub, pub);
    const subAck = await sub.request({ op: 'sub', topic });
    // One publisher, one publish at a time, every third with an idempotency key (a key its slot does not hold yet).
    const answers: { data: number; answer: Frame }[] = [];
    let stop = false;
    const publishing = (async () => {
      for (let i = 0; !stop; i++) {
        const id = `p${i}`;
        pub.send(i % 3 !== 2 ? { op: 'pub', topic, data: i, id } : { op: 'pub', topic, data: i, key: `k${i}`, id });
        // ioredis's TRYAGAIN retries (~1.6 s) and then, for one the node does not hear yet, its own delivery wait (2 s).
        answers.push({ data: i, answer: await pub.next((f) => f.id === id && (f.op === 'ack' || f.op === 'error'), 20_000) });
      }
    })();
    /** `n` more publishes answered: each step below is passed through by publishes (not by a clock). */
    const more = (n: number) => {
      const target = answers.length + n;
      return until(() => answers.length >= target, `${n} more answers`, 30_000);
    };
    const slotKeys = async () => (await redisCli(from, 'cluster', 'getkeysinslot', String(slot), '1000')).split('\n').filter(Boolean).sort();
    let handedOver = -1;
    try {
      await more(3);
      const [fromId, toId] = (await Promise.all([redisCli(from, 'cluster', 'myid'), redisCli(to, 'cluster', 'myid')])).map((x) => x.trim()) as [string, string];
      await redisCli(to, 'cluster', 'setslot', String(slot), 'importing', fromId);
      await redisCli(from, 'cluster', 'setslot', String(slot), 'migrating', toId);
      await more(3);
      // The idempotency keys at once, then the topic's two keys one at a time, so publishes meet them split
      // between the two masters.
      const stream = [KEYS.meta(topic), KEYS.log(topic)];
      const keyed = (await slotKeys()).filter((k) => !stream.includes(k));
      if (keyed.length > 0) await redisCli(from, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'keys', ...keyed);
      for (const k of stream) {
        await redisCli(from, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'keys', k);
        await more(2);
      }
      const left = await slotKeys();
      if (left.length > 0) await redisCli(from, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'keys', ...left);
      // Every key on the new owner, the slot not handed over yet: publishes are redirected there (ASK) and numbered
      // there, while the node still listens on the old owner.
      await more(3);
      handedOver = answers.length;
      for (const p of [to, from, ...rc.ports.filter((x) => x !== to && x !== from)]) await redisCli(p, 'cluster', 'setslot', String(slot), 'node', toId);
      await more(4);
    } finally {
      stop = true;
      await publishing;
    }
    // Honest answers only: `unavailable` (TRYAGAIN: Redis ran nothing) or an ack; never outcome_unknown or internal.
    expect(answers.filter(({ answer }) => answer.op !== 'ack' && answer.code !== 'unavailable')).toEqual([]);
    const acked = answers.filter(({ answer }) => answer.op === 'ack');
    // Two epochs: the old master's, then the new owner's (the migrated meta carries the old replication id), each
    // numbered without a gap, the new one from 1.
    const epochs = [...new Set(acked.map(({ answer }) => answer.epoch as string))];
    expect(epochs).toHaveLength(2);
    const seqsOf = (e: string) => acked.filter(({ answer }) => answer.epoch === e).map(({ answer }) => answer.seq as number);
    const [oldSeqs, newSeqs] = [seqsOf(epochs[0]!), seqsOf(epochs[1]!)];
    expect(oldSeqs).toEqual(Array.from({ length: oldSeqs.length }, (_, i) => i + 1));
    expect(newSeqs).toEqual(Array.from({ length: newSeqs.length }, (_, i) => i + 1));
    // Some were numbered on the new owner before the slot was handed over (the node then listened on the old one).
    expect(answers.slice(0, handedOver).some(({ answer }) => answer.epoch === epochs[1])).toBe(true);
    // Each ack counts the subscriber on the publisher's node, those too: their ack waited until the node had read the
    // message from the stream and delivered it (the echo-before-ack order of docs/protocol.md).
    expect(acked.filter(({ answer }) => answer.delivered !== 1).map(({ data, answer }) => `${data}: ${answer.delivered}`)).toEqual([]);
    // The subscriber got exactly the acked messages, once each, in publish order (those the node did not hear live
    // were fetched from the stream once it listened on the new owner).
    await sub.next((f) => f.op === 'msg' && f.data === acked.at(-1)!.data, 15_000);
    expect((await sub.request({ op: 'ping' })).op).toBe('pong');
    expect(msgs(sub, topic).map((f) => `${f.data} ${f.epoch} ${f.seq}`)).toEqual(acked.map(({ data, answer }) => `${data} ${answer.epoch} ${answer.seq}`));
    // A resume from the last position of the old epoch is told the truth.
    const lastOld = acked.filter(({ answer }) => answer.epoch === epochs[0]).at(-1)!.answer;
    const back = await TestClient.connect(node.url);
    clients.push(back);
    const resumed = await back.request({ op: 'sub', topic, since: lastOld.seq, epoch: lastOld.epoch, life: subAck.life });
    expect(resumed).toMatchObject({ recovered: false, missed: { [topic]: 'epoch_changed' } });
  }, 120_000);
});

// The cluster engine on a real Redis Cluster the test starts itself (3 masters, no replicas): two brokers, one in this
// process and one a child process, on `redis+cluster://…`. Topics that live on different shards: cross-node pub/sub
// (exact and wildcard filters), the ping barrier across every master, gapless seq with publishers on both nodes,
// resume on the other node, presence / who / names / send across nodes, the whole cluster restarted empty, kill -9
// of a broker (timeout presence), and one master killed (its topics answer unavailable, the others keep working, the subscriber moves to another node).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST_NODE_FLAGS, health, metric, nodeIdOf, NODES_REAPED, REAP_GUARD_MS, requireRedis, startNode, subscriberPortOf, TestRedisCluster, until } from './redis.js';
import { spawnBroker, type ChildBroker } from '../helpers/child-broker.js';
import { TestClient, type Frame } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { CHANNELS, KEYS } from '../../src/engine/redis/keys.js';
import { keySlot } from '../../src/engine/redis/outcome.js';

const run = requireRedis('redis cluster', true);

const msgs = (c: TestClient, topic: string) => c.all.filter((f) => f.op === 'msg' && f.topic === topic);

describe.skipIf(!run)('Redis Cluster: two brokers on a 3-master cluster', () => {
  let rc: TestRedisCluster;
  let a: TestBroker; // in this process
  let b: ChildBroker; // a child process (killed with SIGKILL below)
  /** One topic per master: shard[i] lives on the master at owner[i]. */
  const shard: string[] = [];
  const owner: number[] = [];
  let gOwner: number;
  const clients: TestClient[] = [];
  const bUrl = () => `ws://127.0.0.1:${b.port}/ws`;
  const connect = async (url: string) => {
    const c = await TestClient.connect(url);
    clients.push(c);
    return c;
  };
  const req = (c: TestClient, frame: Record<string, unknown>, ms = 10_000): Promise<Frame> => {
    const id = `q${Math.random().toString(36).slice(2)}`;
    c.send({ ...frame, id });
    return c.next((f) => f.id === id && (f.op === 'ack' || f.op === 'error' || f.op === 'pong'), ms);
  };

  beforeAll(async () => {
    rc = await TestRedisCluster.start();
    // Topics whose keys hash to each of the three masters (asked of Redis: CLUSTER KEYSLOT, CLUSTER NODES).
    const masters = new Map<number, string>();
    for (let i = 0; masters.size < rc.ports.length && i < 200; i++) {
      const topic = `sh/t${i}`;
      const slot = await rc.keyslot(KEYS.meta(topic));
      expect(await rc.keyslot(KEYS.log(topic))).toBe(slot);
      const port = await rc.ownerOf(slot);
      if (!masters.has(port)) masters.set(port, topic);
    }
    for (const [port, topic] of masters) {
      owner.push(port);
      shard.push(topic);
    }
    gOwner = await rc.ownerOf(await rc.keyslot(KEYS.nodes));
    // B lists the seeds in another order, so its subscriber sits on another node than A's (which takes the first
    // seed): messages reach the two nodes over different cluster-bus links.
    const rotated = `redis+cluster://${[...rc.ports.slice(1), rc.ports[0]].map((p) => `127.0.0.1:${p}`).join(',')}`;
    const started = await Promise.allSettled([startNode(rc, { historySize: 50 }), spawnBroker(['--redis', rotated, '--history', '50', ...FAST_NODE_FLAGS])]);
    if (started[0].status === 'fulfilled') a = started[0].value;
    if (started[1].status === 'fulfilled') b = started[1].value; // whichever started is stopped in afterAll
    for (const s of started) if (s.status === 'rejected') throw s.reason;
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    if (b && b.child.exitCode === null && b.child.signalCode === null) b.child.kill('SIGKILL');
    await a?.close();
    await rc?.stop();
  }, 30_000);

  it('keys of a topic share one slot; the chosen topics live on three different masters', async () => {
    expect(new Set(owner).size).toBe(3);
    expect(new Set(owner)).toEqual(new Set(rc.ports));
    // All cluster-wide keys on one slot.
    const gSlot = await rc.keyslot(KEYS.nodes);
    for (const k of [KEYS.life, KEYS.ids, KEYS.topics, KEYS.clients, KEYS.names, KEYS.heartbeat('n1'), KEYS.nodeClients('n1')]) expect(await rc.keyslot(k)).toBe(gSlot);
    // A topic starting with `}` would give its keys an empty hash tag (two slots): it gets one tag all the same.
    expect(await rc.keyslot(KEYS.meta('}odd'))).toBe(await rc.keyslot(KEYS.log('}odd')));
    // The broker's own slot function (which master a publish goes to: outcome.ts) agrees with Redis.
    for (const k of [KEYS.meta('}odd'), KEYS.pubKey('a/b', 'k}{'), KEYS.nodes, 'héllo', 'no tag', '{}empty', ...shard.map((t) => KEYS.meta(t))]) {
      expect(keySlot(k)).toBe(await rc.keyslot(k));
    }
    const c = await connect(a.url);
    expect(await req(c, { op: 'pub', topic: '}odd', data: 1 })).toMatchObject({ op: 'ack', seq: 1 });
    expect(await req(c, { op: 'pub', topic: '}odd', data: 2 })).toMatchObject({ op: 'ack', seq: 2 });
  });

  it('cross-node pub/sub on every shard, exact and wildcard filters, once each; a ping on the other node is a barrier across all masters', async () => {
    const subB = await connect(bUrl());
    for (const t of shard) await req(subB, { op: 'sub', topic: t });
    await req(subB, { op: 'sub', topic: 'sh/#' }); // overlaps the exact ones: still one delivery per message
    const subA = await connect(a.url);
    await req(subA, { op: 'sub', topic: 'sh/+' });
    const pubA = await connect(a.url);
    const pubB = await connect(bUrl());
    for (let round = 0; round < 3; round++) {
      for (const t of shard) {
        expect(await req(pubA, { op: 'pub', topic: t, data: `a${round}` })).toMatchObject({ op: 'ack' });
        expect(await req(pubB, { op: 'pub', topic: t, data: `b${round}` })).toMatchObject({ op: 'ack' });
      }
    }
    // Every publish was acknowledged before these pings: a pong proves each message (from every shard) was queued
    // to the client before it. No waiting in between.
    expect((await req(subB, { op: 'ping' })).op).toBe('pong');
    expect((await req(subA, { op: 'ping' })).op).toBe('pong');
    const want = ['a0', 'b0', 'a1', 'b1', 'a2', 'b2'];
    for (const s of [subA, subB]) {
      for (const t of shard) {
        expect(msgs(s, t).map((m) => m.data)).toEqual(want);
        expect(msgs(s, t).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      }
    }
    expect(msgs(subA, shard[0]!)[0]!.from).toEqual({ id: pubA.hello.client.id, name: pubA.hello.client.name });
    // The barrier's token goes through every master (each forwards its own PUBLISHes in its order): a listener of
    // node A's channel on any node hears one copy per master.
    const raw = new Redis({ host: '127.0.0.1', port: rc.ports[2]!, lazyConnect: true });
    try {
      await raw.connect();
      // Copies per token (a late copy of an earlier ping's token may arrive here too: other links, other timing).
      const copies = new Map<string, number>();
      raw.on('message', (_channel: string, m: string) => m.startsWith('b') && copies.set(m, (copies.get(m) ?? 0) + 1));
      await raw.subscribe(CHANNELS.node(await nodeIdOf(a)));
      expect((await req(subA, { op: 'ping' })).op).toBe('pong');
      await until(() => [...copies.values()].some((n) => n >= 3), 'the token from each master');
      expect(Math.max(...copies.values())).toBe(3);
    } finally {
      raw.disconnect();
    }
  });

  it('publishers on both nodes at once on two shards: each subscriber sees 1..N per topic in one order, acks carry the cluster seq', async () => {
    const N = 150;
    const [t1, t2] = [`${shard[0]}/o`, `${shard[1]}/o`];
    const subA = await connect(a.url);
    const subB = await connect(bUrl());
    await req(subA, { op: 'sub', topic: t1 });
    await req(subA, { op: 'sub', topic: t2 });
    await req(subB, { op: 'sub', topic: 'sh/#' });
    const pa = await connect(a.url);
    const pb = await connect(bUrl());
    for (let i = 0; i < N; i++) {
      for (const t of [t1, t2]) {
        pa.send({ op: 'pub', topic: t, data: `a${i}`, id: `a${t}${i}` });
        pb.send({ op: 'pub', topic: t, data: `b${i}`, id: `b${t}${i}` });
      }
    }
    for (const t of [t1, t2]) {
      const acks = await Promise.all([...Array(N).keys()].flatMap((i) => [pa.next((f) => f.id === `a${t}${i}`, 20_000), pb.next((f) => f.id === `b${t}${i}`, 20_000)]));
      expect(acks.every((f) => f.op === 'ack')).toBe(true);
      expect(acks.map((f) => f.seq as number).sort((x, y) => x - y)).toEqual([...Array(2 * N).keys()].map((i) => i + 1));
      expect(new Set(acks.map((f) => f.epoch)).size).toBe(1);
      for (const s of [subA, subB]) {
        await until(() => msgs(s, t).length >= 2 * N, `all messages of ${t}`, 20_000);
        expect(msgs(s, t).map((m) => m.seq)).toEqual([...Array(2 * N).keys()].map((i) => i + 1));
      }
      expect(msgs(subA, t).map((m) => m.data)).toEqual(msgs(subB, t).map((m) => m.data));
    }
  }, 60_000);

  it('resumes on the other node after a disconnect: recovered with exactly the missed messages, then live ones', async () => {
    const topic = shard[2]!;
    const p = await connect(a.url);
    const first = await connect(a.url);
    const sub = await req(first, { op: 'sub', topic: `${topic}/r` });
    for (let i = 1; i <= 3; i++) await req(p, { op: 'pub', topic: `${topic}/r`, data: i });
    await until(() => msgs(first, `${topic}/r`).length === 3, 'the first three');
    const last = msgs(first, `${topic}/r`).at(-1)!;
    first.close();
    for (let i = 4; i <= 8; i++) await req(p, { op: 'pub', topic: `${topic}/r`, data: i });
    const again = await connect(bUrl());
    const racing = (async () => {
      for (let i = 9; i <= 15; i++) await req(p, { op: 'pub', topic: `${topic}/r`, data: i });
    })();
    const ack = await req(again, { op: 'sub', topic: `${topic}/r`, since: last.seq, epoch: last.epoch, life: sub.life });
    expect(ack).toMatchObject({ op: 'ack', recovered: true, life: sub.life });
    await racing;
    expect((await req(again, { op: 'ping' })).op).toBe('pong');
    expect(msgs(again, `${topic}/r`).map((m) => m.data)).toEqual([...Array(12).keys()].map((i) => i + 4));
    // A wildcard resume across shards: positions for topics of every shard.
    const w = await connect(bUrl());
    const wild = await req(w, { op: 'sub', topic: 'sh/+', since: 0 });
    expect(wild).toMatchObject({ op: 'ack', recovered: true });
    expect(Object.keys(wild.positions).sort()).toEqual([...shard].sort());
  });

  it('presence, who, unique names and send across nodes', async () => {
    const watcher = await connect(`${a.url}?name=watcher`);
    await req(watcher, { op: 'sub', topic: 'room/1', presence: true });
    expect(await watcher.next((f) => f.op === 'event')).toMatchObject({ event: 'join', client: { name: 'watcher' } });
    const bob = await connect(`${bUrl()}?name=bob`);
    const other = await connect(`${a.url}?name=bob`);
    expect(other.hello.client.name).not.toBe('bob');
    expect(await req(other, { op: 'rename', name: 'bob' })).toMatchObject({ op: 'error', code: 'name_taken' });
    await req(bob, { op: 'sub', topic: 'room/1' });
    expect(await watcher.next((f) => f.op === 'event', 10_000)).toMatchObject({ event: 'join', client: { id: bob.hello.client.id, name: 'bob' }, topic: 'room/1' });
    expect(await req(bob, { op: 'rename', name: 'robert' })).toMatchObject({ name: 'robert' });
    expect(await watcher.next((f) => f.op === 'event', 10_000)).toMatchObject({ event: 'rename', old: 'bob', client: { name: 'robert' } });
    const who = await req(watcher, { op: 'who', topic: 'room/1' });
    expect(who.clients.map((c: Frame) => c.name).sort()).toEqual(['robert', 'watcher']);
    expect(await req(watcher, { op: 'send', to: 'robert', data: 'by name' })).toMatchObject({ op: 'ack' });
    expect(await req(watcher, { op: 'send', to: bob.hello.client.id, data: 'by id' })).toMatchObject({ op: 'ack' });
    expect((await bob.next((f) => f.op === 'direct', 10_000)).data).toBe('by name');
    expect(await bob.next((f) => f.op === 'direct', 10_000)).toMatchObject({ data: 'by id', from: { id: watcher.hello.client.id, name: 'watcher' } });
    expect(await req(watcher, { op: 'send', to: 'nobody-here', data: 1 })).toMatchObject({ op: 'error', code: 'not_found' });
    // And back from B to A.
    expect(await req(bob, { op: 'send', to: 'watcher', data: 'hi' })).toMatchObject({ op: 'ack' });
    expect((await watcher.next((f) => f.op === 'direct', 10_000)).data).toBe('hi');
    await req(bob, { op: 'unsub', topic: 'room/1' });
    expect(await watcher.next((f) => f.op === 'event', 10_000)).toMatchObject({ event: 'leave', client: { name: 'robert' } });
    expect(await watcher.quiet((f) => f.op === 'event')).toBe(true);
  });

  it('the whole Redis Cluster restarted empty: both nodes take the same new life, re-assert their clients, fan-out resumes, ids stay unique', async () => {
    const sub = await connect(bUrl());
    const topic = shard[1]!;
    const first = await req(sub, { op: 'sub', topic });
    const watcher = await connect(a.url);
    await req(watcher, { op: 'sub', topic, presence: true });
    await watcher.next((f) => f.op === 'event'); // its own join
    const pub = await connect(a.url);
    const before = await req(pub, { op: 'pub', topic, data: 'before' });
    await sub.next((f) => f.op === 'msg' && f.data === 'before', 10_000);

    await rc.restart();
    // Each node notices (its cluster connection may stay `ready` throughout: the life is checked every tick).
    await until(async () => {
      const ack = await req(sub, { op: 'sub', topic }); // an ack carries B's life
      return a.hub.life !== first.life && ack.life === a.hub.life;
    }, 'one new life on both nodes', 20_000);
    let after: Frame | undefined;
    await until(async () => (after = await req(pub, { op: 'pub', topic, data: 'after' })).op === 'ack', 'a publish that is acknowledged', 15_000);
    expect(after).toMatchObject({ op: 'ack', seq: 1 });
    expect(after!.epoch).not.toBe(before.epoch);
    expect((await sub.next((f) => f.op === 'msg' && f.data === 'after', 10_000)).seq).toBe(1);
    // Nobody announced the end of any client (Redis lost them; nobody reaped them): no join, leave or timeout again.
    expect(await watcher.quiet((f) => f.op === 'event'), JSON.stringify(watcher.inbox.filter((f) => f.op === 'event'))).toBe(true);
    // B's client was re-asserted (who on A lists it); new clients on both nodes get ids no one has.
    const ids = new Set([sub, pub].map((c) => c.hello.client.id));
    await until(async () => (await req(pub, { op: 'who' })).clients.some((c: Frame) => c.id === sub.hello.client.id), 'B\'s client in who', 10_000);
    for (const url of [a.url, bUrl(), a.url, bUrl()]) {
      const c = await connect(url);
      expect(ids.has(c.hello.client.id)).toBe(false);
      ids.add(c.hello.client.id);
    }
  }, 60_000);

  it('kill -9 of a broker: its clients time out (presence), announced by the survivor reaping the node whose heartbeat expired; their names are freed', async () => {
    const watcher = await connect(a.url);
    await req(watcher, { op: 'sub', topic: 'room/k', presence: true });
    await watcher.next((f) => f.op === 'event'); // itself
    const carol = await connect(`${bUrl()}?name=carol`);
    await req(carol, { op: 'sub', topic: 'room/k' });
    expect(await watcher.next((f) => f.op === 'event', 10_000)).toMatchObject({ event: 'join', client: { name: 'carol' } });
    const reaped = await metric(a, NODES_REAPED);
    b.child.kill('SIGKILL');
    const timeout = await watcher.next((f) => f.op === 'event' && f.client?.name === 'carol', REAP_GUARD_MS);
    expect(timeout).toMatchObject({ event: 'timeout', topic: 'room/k', client: { id: carol.hello.client.id } });
    // Ended by the survivor's reaper, which found b's heartbeat expired (its TTL is all the wait above is for).
    expect(await metric(a, NODES_REAPED)).toBe(reaped + 1);
    expect(await watcher.quiet((f) => f.op === 'event' && f.client?.name === 'carol')).toBe(true);
    expect(await req(watcher, { op: 'rename', name: 'carol' })).toMatchObject({ op: 'ack', name: 'carol' });
  }, 60_000);

  it('a master killed (no replica): its topics answer unavailable, the other shards keep working, the subscriber moves, nothing crashes', async () => {
    // The master to kill: the one this node's subscriber is on when it does not hold the cluster-wide keys ({g}).
    const subscribedTo = await subscriberPortOf(rc, await nodeIdOf(a));
    const victim = subscribedTo !== gOwner ? subscribedTo : owner.find((p) => p !== gOwner)!;
    const dead = shard[owner.indexOf(victim)]!;
    const live = shard[owner.findIndex((p) => p !== victim && p !== gOwner)] ?? shard[owner.indexOf(gOwner)]!;
    const sub = await connect(a.url);
    await req(sub, { op: 'sub', topic: live });
    const pub = await connect(a.url);
    const before = await req(pub, { op: 'pub', topic: live, data: 'before' });
    await until(() => msgs(sub, live).some((m) => m.data === 'before'), 'the message before');

    await rc.kill(victim);
    // The node says so: the killed master's slots have no working master (CLUSTER INFO), so /healthz is degraded.
    await until(async () => (await health(a)) === 'degraded', '/healthz degraded', 15_000);
    expect(await req(pub, { op: 'pub', topic: dead, data: 'lost' }, 15_000)).toMatchObject({ op: 'error', code: 'unavailable' });
    const res = await fetch(`${a.httpUrl}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: dead, data: 'lost' }) });
    expect(res.status).toBe(503);
    const resumer = await connect(a.url);
    expect(await req(resumer, { op: 'sub', topic: dead, since: 1 }, 15_000)).toMatchObject({ op: 'error', code: 'unavailable' });
    const after = await req(pub, { op: 'pub', topic: live, data: 'after' }, 15_000);
    expect(after).toMatchObject({ op: 'ack', seq: before.seq + 1, epoch: before.epoch });
    // The subscriber, if it was on the dead master, moved to another node and caught up from the stream.
    await until(() => msgs(sub, live).some((m) => m.data === 'after'), 'the message after', 15_000);
    if (subscribedTo === victim) {
      const id = await nodeIdOf(a);
      await until(async () => (await subscriberPortOf(rc, id).catch(() => victim)) !== victim, 'the subscriber on another node', 15_000);
    }
    expect(await req(pub, { op: 'pub', topic: live, data: 'later' }, 15_000)).toMatchObject({ op: 'ack', seq: before.seq + 2 });
    await until(() => msgs(sub, live).some((m) => m.data === 'later'), 'a later message', 15_000);
    expect(msgs(sub, live).map((m) => m.data)).toEqual(['before', 'after', 'later']);
    // Presence and who ({g} is alive) still work; the process answers HTTP, degraded while a shard is down.
    expect((await req(sub, { op: 'who' })).op).toBe('ack');
    expect(await health(a)).toBe('degraded');
  }, 60_000);
});

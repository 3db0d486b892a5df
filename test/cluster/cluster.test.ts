// Two brokers on one Redis are one broker: cross-node pub/sub over WebSocket, TCP and the API; one order and
// gapless seq per topic with publishers on both nodes; resume on the other node; presence, who, names and send
// across nodes; Redis down and back (unavailable, degraded, recovery, new life); the in-flight bound.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { health, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient, type Frame } from '../helpers/client.js';
import { LineClient } from '../helpers/line-client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('cluster');

async function publishApi(node: TestBroker, topic: string, data: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${node.httpUrl}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic, data }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const msgs = (c: TestClient, topic: string) => c.all.filter((f) => f.op === 'msg' && f.topic === topic);

describe.skipIf(!run)('cluster: two brokers on one Redis', () => {
  let redis: TestRedis;
  let a: TestBroker;
  let b: TestBroker;
  const clients: TestClient[] = [];
  const connect = async (node: TestBroker, query = '') => {
    const c = await TestClient.connect(node.url + query);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    redis = await TestRedis.start();
    a = await startNode(redis, { historySize: 50 });
    b = await startNode(redis, { historySize: 50 });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('client ids are unique across nodes and keep the form c<digits>', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 6; i++) ids.add((await connect(i % 2 ? a : b)).hello.client.id);
    expect(ids.size).toBe(6);
    for (const id of ids) expect(id).toMatch(/^c\d+$/);
  });

  it('wildcard subscribers on the other node get WebSocket, TCP and API publishes, once each', async () => {
    const sub = await connect(b);
    await sub.request({ op: 'sub', topic: 'chat' });
    await sub.request({ op: 'sub', topic: 'x/+/1' });
    await sub.request({ op: 'sub', topic: 'x/#' }); // overlaps x/+/1: still one delivery per message
    const pub = await connect(a);
    const ack = await pub.request({ op: 'pub', topic: 'x/a/1', data: 'ws' });
    expect(ack).toMatchObject({ op: 'ack', seq: 1, delivered: 0 });
    const api = await publishApi(a, 'x/b/1', 'api');
    expect(api.status).toBe(200);
    expect(api.body).toMatchObject({ seq: 1 });
    // A TCP chat user on node A talks in the room; the WebSocket subscriber of `chat` on node B hears it.
    const nc = await LineClient.connect(a.tcpPort);
    nc.send('hello from tcp');
    const chat = await sub.next((f) => f.op === 'msg' && f.topic === 'chat');
    expect(chat.data).toBe('hello from tcp');
    // And the TCP user hears a WebSocket publish from node B as a chat line with the sender's name.
    await sub.request({ op: 'pub', topic: 'chat', data: 'hello tcp' });
    await nc.next((l) => l.endsWith(': hello tcp'));
    nc.close();
    await sub.next((f) => f.op === 'msg' && f.topic === 'x/a/1');
    await sub.next((f) => f.op === 'msg' && f.topic === 'x/b/1');
    // Barrier: a later message on the same topic arrives after any duplicate would have.
    await pub.request({ op: 'pub', topic: 'x/a/1', data: 'marker' });
    await sub.next((f) => f.op === 'msg' && f.data === 'marker');
    expect(msgs(sub, 'x/a/1').map((m) => m.data)).toEqual(['ws', 'marker']);
    expect(msgs(sub, 'x/b/1').map((m) => m.data)).toEqual(['api']);
    expect(msgs(sub, 'x/a/1')[0]!.from).toEqual({ id: pub.hello.client.id, name: pub.hello.client.name });
  });

  it('publishers on both nodes at once: every subscriber on each node sees 1..N in order, acks carry the cluster seq', async () => {
    const N = 300;
    const subA = await connect(a);
    const subB = await connect(b);
    await subA.request({ op: 'sub', topic: 'order/t' });
    await subB.request({ op: 'sub', topic: 'order/#' });
    const pa = await connect(a);
    const pb = await connect(b);
    // Pipelined: each publisher sends N frames without waiting.
    for (let i = 0; i < N; i++) {
      pa.send({ op: 'pub', topic: 'order/t', data: `a${i}`, id: `a${i}` });
      pb.send({ op: 'pub', topic: 'order/t', data: `b${i}`, id: `b${i}` });
    }
    const acks = await Promise.all([...Array(N).keys()].flatMap((i) => [pa.next((f) => f.id === `a${i}`, 10_000), pb.next((f) => f.id === `b${i}`, 10_000)]));
    const seqs = acks.map((f) => f.seq as number).sort((x, y) => x - y);
    expect(seqs).toEqual([...Array(2 * N).keys()].map((i) => i + 1));
    expect(new Set(acks.map((f) => f.epoch)).size).toBe(1);
    // Each publisher's own acks are in its publish order.
    for (const p of ['a', 'b']) {
      const mine = acks.filter((f) => String(f.id).startsWith(p)).sort((x, y) => Number(String(x.id).slice(1)) - Number(String(y.id).slice(1)));
      expect(mine.map((f) => f.seq)).toEqual([...mine.map((f) => f.seq)].sort((x, y) => x - y));
    }
    for (const s of [subA, subB]) {
      await until(() => msgs(s, 'order/t').length >= 2 * N, 'all messages');
      const got = msgs(s, 'order/t');
      expect(got.map((m) => m.seq)).toEqual([...Array(2 * N).keys()].map((i) => i + 1));
      // Same order on both nodes: the data at each seq is the same.
    }
    expect(msgs(subA, 'order/t').map((m) => m.data)).toEqual(msgs(subB, 'order/t').map((m) => m.data));
  });

  it("a publisher's own echo comes before its ack", async () => {
    const c = await connect(b);
    await c.request({ op: 'sub', topic: 'echo/t' });
    const ack = await c.request({ op: 'pub', topic: 'echo/t', data: 1 });
    const echoAt = c.all.findIndex((f) => f.op === 'msg' && f.topic === 'echo/t');
    expect(echoAt).toBeGreaterThanOrEqual(0);
    expect(echoAt).toBeLessThan(c.all.indexOf(ack));
    expect(ack.delivered).toBe(1);
  });

  it('resumes on the other node: recovered with exactly the missed messages, then live ones, no duplicates', async () => {
    const p = await connect(a);
    const first = await connect(a);
    const sub = await first.request({ op: 'sub', topic: 'res/t' });
    for (let i = 1; i <= 3; i++) await p.request({ op: 'pub', topic: 'res/t', data: i });
    await until(() => msgs(first, 'res/t').length === 3, 'the first three');
    const last = msgs(first, 'res/t').at(-1)!;
    first.close();
    for (let i = 4; i <= 8; i++) await p.request({ op: 'pub', topic: 'res/t', data: i });
    const again = await connect(b);
    // Live publishes race the replay: none may be lost or doubled.
    const racing = (async () => {
      for (let i = 9; i <= 20; i++) await p.request({ op: 'pub', topic: 'res/t', data: i });
    })();
    const ack = await again.request({ op: 'sub', topic: 'res/t', since: last.seq, epoch: last.epoch, life: sub.life });
    expect(ack).toMatchObject({ recovered: true, life: sub.life });
    await racing;
    await until(() => msgs(again, 'res/t').some((m) => m.data === 20), 'the live tail');
    await p.request({ op: 'pub', topic: 'res/t', data: 21 });
    await until(() => msgs(again, 'res/t').some((m) => m.data === 21), 'the marker');
    expect(msgs(again, 'res/t').map((m) => m.seq)).toEqual([...Array(18).keys()].map((i) => i + 4));
  });

  it('wildcard resume on another node with positions per topic; unknown epoch and trimmed history say why', async () => {
    const p = await connect(a);
    for (const t of ['w/a', 'w/b']) for (let i = 0; i < 3; i++) await p.request({ op: 'pub', topic: t, data: i });
    const c = await connect(b);
    const first = await c.request({ op: 'sub', topic: 'w/+', since: 0 });
    expect(first.recovered).toBe(true);
    expect(Object.keys(first.positions).sort()).toEqual(['w/a', 'w/b']);
    const ea = first.positions['w/a'].epoch;
    const ack = await c.request({ op: 'sub', topic: 'w/+', since: { 'w/a': 1, 'w/b': 3 }, epoch: { 'w/a': ea, 'w/b': 'zzzz.1' }, life: first.life });
    expect(ack).toMatchObject({ recovered: false, missed: { 'w/b': 'epoch_changed' } });
    for (let i = 0; i < 60; i++) await p.request({ op: 'pub', topic: 'w/long', data: i }); // history 50
    const trimmed = await c.request({ op: 'sub', topic: 'w/long', since: 2, epoch: (await p.request({ op: 'pub', topic: 'w/long', data: 'x' })).epoch, life: first.life });
    expect(trimmed).toMatchObject({ recovered: false, reason: 'history_trimmed' });
    const stale = await c.request({ op: 'sub', topic: 'w/#', since: 0, life: 'notthelife' });
    expect(stale).toMatchObject({ recovered: false, missed: { 'w/#': 'unknown_position' } });
  });

  it('presence, who, unique names, rename collisions and send work across nodes', async () => {
    const watcher = await connect(a, '?name=watcher');
    await watcher.request({ op: 'sub', topic: 'room/1', presence: true });
    expect(await watcher.next((f) => f.op === 'event')).toMatchObject({ event: 'join', client: { name: 'watcher' } }); // itself
    const bob = await connect(b, '?name=bob');
    // The name is taken cluster-wide: node A refuses it at connect (default name + error) and on rename.
    const other = await connect(a, '?name=bob');
    expect(other.hello.client.name).not.toBe('bob');
    expect(await other.next((f) => f.op === 'error')).toMatchObject({ code: 'name_taken' });
    expect(await other.request({ op: 'rename', name: 'bob' })).toMatchObject({ op: 'error', code: 'name_taken' });
    await bob.request({ op: 'sub', topic: 'room/1' });
    expect(await watcher.next((f) => f.op === 'event')).toMatchObject({ event: 'join', client: { id: bob.hello.client.id, name: 'bob' }, topic: 'room/1' });
    expect(await bob.request({ op: 'rename', name: 'robert' })).toMatchObject({ name: 'robert' });
    expect(await watcher.next((f) => f.op === 'event')).toMatchObject({ event: 'rename', old: 'bob', client: { name: 'robert' } });
    // bob is free again, on any node.
    expect(await other.request({ op: 'rename', name: 'bob' })).toMatchObject({ op: 'ack', name: 'bob' });
    // who on node A lists the subscriber of node B; paginated across nodes.
    const who = await watcher.request({ op: 'who', topic: 'room/1' });
    expect(who.clients.map((c: Frame) => c.name).sort()).toEqual(['robert', 'watcher']);
    const all: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await watcher.request(cursor === undefined ? { op: 'who', limit: 2 } : { op: 'who', limit: 2, cursor });
      all.push(...page.clients.map((c: Frame) => c.id));
      cursor = page.next;
    } while (cursor);
    expect(all).toContain(bob.hello.client.id);
    expect(all).toContain(watcher.hello.client.id);
    expect(new Set(all).size).toBe(all.length);
    // send by name and by id to a client on the other node.
    expect(await watcher.request({ op: 'send', to: 'robert', data: 'by name' })).toMatchObject({ op: 'ack' });
    expect(await watcher.request({ op: 'send', to: bob.hello.client.id, data: 'by id' })).toMatchObject({ op: 'ack' });
    expect((await bob.next((f) => f.op === 'direct')).data).toBe('by name');
    expect((await bob.next((f) => f.op === 'direct'))).toMatchObject({ data: 'by id', from: { id: watcher.hello.client.id, name: 'watcher' } });
    expect(await watcher.request({ op: 'send', to: 'nobody-here', data: 1 })).toMatchObject({ op: 'error', code: 'not_found' });
    // Leave on close reaches the watcher on the other node exactly once; the name is freed.
    bob.close();
    expect(await watcher.next((f) => f.op === 'event')).toMatchObject({ event: 'leave', client: { name: 'robert' } });
    expect(await watcher.quiet((f) => f.op === 'event')).toBe(true);
    expect(await other.request({ op: 'rename', name: 'robert' })).toMatchObject({ op: 'ack' });
  });

  it('bounded in-flight work: over --redis-max-inflight a request gets unavailable, the connection stays', async () => {
    const small = await startNode(redis, { redisMaxInflight: 2 });
    try {
      const c = await TestClient.connect(small.url);
      for (let i = 0; i < 50; i++) c.send({ op: 'pub', topic: 'cap/t', data: i, id: `p${i}` });
      const replies = await Promise.all([...Array(50).keys()].map((i) => c.next((f) => f.id === `p${i}`)));
      expect(replies.some((f) => f.op === 'error' && f.code === 'unavailable')).toBe(true);
      expect(replies.some((f) => f.op === 'ack')).toBe(true);
      // Replies stay in request order.
      expect(c.all.filter((f) => String(f.id).startsWith('p')).map((f) => f.id)).toEqual([...Array(50).keys()].map((i) => `p${i}`));
      expect((await c.request({ op: 'pub', topic: 'cap/t', data: 'after' })).op).toBe('ack');
      c.close();
    } finally {
      await small.close();
    }
  });
});

describe.skipIf(!run)('cluster: Redis goes away and comes back', () => {
  it('publishes get unavailable, /healthz says degraded, nothing crashes; back empty: ok, fan-out resumes, recovered:false with a new epoch', async () => {
    const redis = await TestRedis.start();
    const a = await startNode(redis);
    const b = await startNode(redis);
    try {
      const pub = await TestClient.connect(a.url);
      const sub = await TestClient.connect(b.url);
      const subAck = await sub.request({ op: 'sub', topic: 'f/t' });
      const before = await pub.request({ op: 'pub', topic: 'f/t', data: 'before' });
      await sub.next((f) => f.op === 'msg');
      expect(await health(a)).toBe('running');

      await redis.stop();
      await until(async () => (await health(a)) === 'degraded' && (await health(b)) === 'degraded', 'degraded');
      expect(await pub.request({ op: 'pub', topic: 'f/t', data: 'lost' })).toMatchObject({ op: 'error', code: 'unavailable' });
      const api = await publishApi(a, 'f/t', 'lost');
      expect(api.status).toBe(503);
      expect(api.body.error).toBe('unavailable');
      expect(await (await fetch(`${a.httpUrl}/metrics`)).text()).toMatch(/switchboard_engine_degraded 1/);
      // Connections stay up and are served.
      expect((await pub.request({ op: 'ping' })).op).toBe('pong');

      await redis.restart(); // empty: Redis lost everything
      await until(async () => (await health(a)) === 'running' && (await health(b)) === 'running', 'running again');
      expect(await (await fetch(`${a.httpUrl}/metrics`)).text()).toMatch(/switchboard_engine_degraded 0/);
      const after = await pub.request({ op: 'pub', topic: 'f/t', data: 'after' });
      expect(after).toMatchObject({ op: 'ack', seq: 1 });
      expect(after.epoch).not.toBe(before.epoch);
      // The subscription on node B survived; fan-out resumes.
      expect((await sub.next((f) => f.op === 'msg')).data).toBe('after');
      // A resume from the old position: recovered false (epoch changed), and the life changed.
      const resumer = await TestClient.connect(b.url);
      const ack = await resumer.request({ op: 'sub', topic: 'f/t', since: before.seq, epoch: before.epoch, life: subAck.life });
      expect(ack).toMatchObject({ recovered: false, missed: { 'f/t': 'epoch_changed' } });
      expect(ack.life).not.toBe(subAck.life);
      // Its names and presence were re-asserted: who on either node lists the clients of both.
      const who = await resumer.request({ op: 'who' });
      expect(who.clients.map((c: Frame) => c.id)).toEqual(expect.arrayContaining([pub.hello.client.id, sub.hello.client.id]));
      for (const c of [pub, sub, resumer]) c.close();
    } finally {
      await a.close();
      await b.close();
      await redis.stop();
    }
  });
});

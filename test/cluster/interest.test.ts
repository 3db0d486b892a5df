// Interest routing (docs/cluster.md): a node receives a topic's messages only while one of its clients holds a
// filter that can match it. Three nodes on one Redis; what each node received is read from its /metrics
// (switchboard_cluster_messages_received_total, switchboard_cluster_channels), never from its internals.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metric, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { familyOf } from '../../src/engine/redis/interest.js';

const run = requireRedis('interest');
const LINGER_MS = 150;

const received = (n: TestBroker) => metric(n, 'switchboard_cluster_messages_received_total');
const channels = (n: TestBroker) => metric(n, 'switchboard_cluster_channels');

describe.skipIf(!run)('interest routing: three nodes, one Redis', () => {
  let redis: TestRedis;
  let a: TestBroker;
  let b: TestBroker;
  let c: TestBroker;
  const clients: TestClient[] = [];
  const connect = async (node: TestBroker) => {
    const cl = await TestClient.connect(node.url);
    clients.push(cl);
    return cl;
  };

  beforeAll(async () => {
    redis = await TestRedis.start();
    [a, b, c] = (await Promise.all([0, 1, 2].map(() => startNode(redis, { interestLingerMs: LINGER_MS })))) as [TestBroker, TestBroker, TestBroker];
  });
  afterAll(async () => {
    for (const cl of clients) cl.close();
    await Promise.all([a, b, c].map((n) => n?.close()));
    await redis?.stop();
  });

  it('a node with no subscriber of a topic receives none of its messages; the node with one receives each once', async () => {
    const sub = await connect(b);
    await sub.request({ op: 'sub', topic: 'room/1' });
    const pub = await connect(a);
    const [b0, c0, a0] = [await received(b), await received(c), await received(a)];
    for (let i = 0; i < 20; i++) await pub.request({ op: 'pub', topic: 'room/1', data: i });
    await until(() => sub.all.filter((f) => f.op === 'msg' && f.topic === 'room/1').length === 20, 'the 20 messages on node B');
    expect(sub.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual([...Array(20).keys()]);
    expect((await received(b)) - b0).toBe(20);
    expect((await received(c)) - c0).toBe(0);
    // The publisher's node has no subscriber either: its acks do not wait for the message to come back.
    expect((await received(a)) - a0).toBe(0);
    expect(await channels(c)).toBe(0);
  });

  it('a wildcard filter pulls its first level\'s family only: `sensors/+/temp` on C does not receive `chat/…`', async () => {
    expect(familyOf('sensors')).not.toBe(familyOf('chat')); // else the test would prove nothing
    const w = await connect(c);
    await w.request({ op: 'sub', topic: 'sensors/+/temp' });
    expect(await channels(c)).toBe(1);
    const pub = await connect(a);
    const c0 = await received(c);
    for (let i = 0; i < 10; i++) await pub.request({ op: 'pub', topic: 'chat/general', data: i });
    await pub.request({ op: 'pub', topic: 'sensors/k1/humidity', data: 'h' }); // same family: received, not delivered
    await pub.request({ op: 'pub', topic: 'sensors/k1/temp', data: 't' });
    await w.next((f) => f.op === 'msg' && f.topic === 'sensors/k1/temp');
    expect((await received(c)) - c0).toBe(2);
    expect(w.all.filter((f) => f.op === 'msg').map((f) => f.topic)).toEqual(['sensors/k1/temp']);
    w.close();
  });

  it('a bare `#` asks for everything and gets it, once per message', async () => {
    const all = await connect(c);
    await all.request({ op: 'sub', topic: '#' });
    const pub = await connect(a);
    for (const t of ['x/1', 'y/2', 'z']) await pub.request({ op: 'pub', topic: t, data: t });
    await all.next((f) => f.op === 'msg' && f.topic === 'z');
    expect(all.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['x/1', 'y/2', 'z']);
    all.close();
  });

  it('after the last subscriber leaves the node stops listening; a later subscriber gets only what is published after its ack', async () => {
    const first = await connect(c);
    await first.request({ op: 'sub', topic: 'linger/t' });
    const pub = await connect(a);
    await pub.request({ op: 'pub', topic: 'linger/t', data: 'seen' });
    await first.next((f) => f.op === 'msg' && f.data === 'seen');
    await first.request({ op: 'unsub', topic: 'linger/t' });
    // Every filter on C is gone (earlier tests' clients closed): after the linger C listens on nothing.
    await until(async () => (await channels(c)) === 0, 'node C to drop its channels', 5000);
    // Published while C hears nothing: a new subscriber must not be handed these (they precede its subscription).
    for (let i = 0; i < 3; i++) await pub.request({ op: 'pub', topic: 'linger/t', data: `missed-${i}` });
    const later = await connect(c);
    await later.request({ op: 'sub', topic: 'linger/t' });
    const ack = await pub.request({ op: 'pub', topic: 'linger/t', data: 'after' });
    expect(ack).toMatchObject({ seq: 5 });
    await later.next((f) => f.op === 'msg' && f.data === 'after');
    expect(later.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['after']);
    // And the one who resumes from its position gets the gap from the stream: nothing lost.
    const resumed = await connect(c);
    const r = await resumed.request({ op: 'sub', topic: 'linger/t', since: 1, epoch: ack.epoch });
    expect(r).toMatchObject({ recovered: true });
    await resumed.next((f) => f.op === 'msg' && f.data === 'after');
    expect(resumed.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['missed-0', 'missed-1', 'missed-2', 'after']);
  });

  it('a publisher subscribed to its own topic gets its echo before its ack, and `delivered` counts it', async () => {
    const me = await connect(a);
    await me.request({ op: 'sub', topic: 'echo/t' });
    const ack = await me.request({ op: 'pub', topic: 'echo/t', data: 'mine' });
    expect(ack).toMatchObject({ delivered: 1 });
    const i = me.all.findIndex((f) => f.op === 'msg' && f.data === 'mine');
    const j = me.all.findIndex((f) => f.op === 'ack' && f === ack);
    expect(i).toBeGreaterThanOrEqual(0);
    expect(i).toBeLessThan(j);
  });

  it('filters asked for at connect are heard before hello: a message published right after it arrives', async () => {
    const early = await TestClient.connect(c.url + '?topics=' + encodeURIComponent('boot/now'));
    clients.push(early);
    const pub = await connect(a);
    await pub.request({ op: 'pub', topic: 'boot/now', data: 'first' });
    const m = await early.next((f) => f.op === 'msg' && f.topic === 'boot/now');
    expect(m.data).toBe('first');
  });
});

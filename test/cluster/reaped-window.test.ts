// A node taken for dead while it still runs (its loop stuck past --node-hang-ms, or its heartbeat lost) hears it only
// at its next tick: the presence events it published meanwhile reached every watcher after the reaper's `timeout`s,
// so a watcher heard a client end twice (timeout, then leave) and, after the re-assert's `join`s, join twice (found by a review helper). Until it re-asserts, its events are held; the re-assert announces its clients afresh.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { requireRedis, startNode, TestRedis } from './redis.js';
import { TestClient, type Frame } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { KEYS, CHANNELS } from '../../src/engine/redis/keys.js';
import * as LUA from '../../src/engine/redis/scripts.js';

const run = requireRedis('presence events of a node reaped while it runs');

describe.skipIf(!run)('cluster: presence events between a reap and the reaped node noticing it', () => {
  let redis: TestRedis;
  let a: TestBroker; // a slow tick: it notices the reap seconds later
  let b: TestBroker;
  let r: Redis;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    redis = await TestRedis.start();
    a = await startNode(redis, { nodeTtlMs: 60_000, nodeTickMs: 3000 });
    b = await startNode(redis);
    r = new Redis(redis.url);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    r?.disconnect();
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  const about = (id: string, topic: string) => (f: Frame) => f.op === 'event' && f.client?.id === id && f.topic === topic;

  it('each client ends once and joins once for a watcher on another node', async () => {
    const watcher = await TestClient.connect(b.url);
    clients.push(watcher);
    await watcher.request({ op: 'sub', topic: 'rw/1', presence: true });
    await watcher.request({ op: 'sub', topic: 'rw/2', presence: true });
    const x = await TestClient.connect(a.url);
    const y = await TestClient.connect(a.url);
    clients.push(x, y);
    const [xid, yid] = [x.hello.client.id as string, y.hello.client.id as string];
    expect((await x.request({ op: 'sub', topic: 'rw/1' })).op).toBe('ack');
    expect((await y.request({ op: 'sub', topic: 'rw/1' })).op).toBe('ack');
    await watcher.next((f) => about(yid, 'rw/1')(f) && f.event === 'join');
    const node = (JSON.parse((await r.hget(KEYS.clients, xid))!) as { node: string }).node;

    // A survivor's reap of A (as after A's heartbeat expired): timeouts for x and y on rw/1.
    await r.multi().del(KEYS.heartbeat(node)).eval(LUA.REAP, 5, KEYS.nodes, KEYS.heartbeat(node), KEYS.clients, KEYS.names, KEYS.nodeClients(node), node, CHANNELS.bus).exec();
    // Before A's next tick: x leaves rw/1, y takes rw/2.
    expect((await x.request({ op: 'unsub', topic: 'rw/1' })).op).toBe('ack');
    expect((await y.request({ op: 'sub', topic: 'rw/2' })).op).toBe('ack');
    // A notices at its tick and re-asserts (a `join` per filter its clients hold).
    await watcher.next((f) => about(yid, 'rw/1')(f) && f.event === 'join', 8000);
    // Everything A announced before it has reached the watcher once a later event of A's has.
    const marker = await TestClient.connect(a.url);
    clients.push(marker);
    await marker.request({ op: 'sub', topic: 'rw/2' });
    await watcher.next((f) => about(marker.hello.client.id as string, 'rw/2')(f) && f.event === 'join', 5000);

    const said = (id: string, topic: string) => watcher.all.filter(about(id, topic)).map((f) => f.event as string).join(',');
    expect({ x1: said(xid, 'rw/1'), y1: said(yid, 'rw/1'), y2: said(yid, 'rw/2') }).toEqual({ x1: 'join,timeout', y1: 'join,timeout,join', y2: 'join' });
  }, 20_000);
});

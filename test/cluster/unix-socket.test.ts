// A cluster whose Redis is on this host's Unix socket (`--redis unix:///path/to/redis.sock`): every connection of a
// node (commands, the subscriber, the heartbeat thread) goes through the socket, messages cross nodes in order, and
// a Redis restarted on the same path is found again.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { health, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('cluster: Redis on a Unix socket');

describe.skipIf(!run)('cluster: Redis on a Unix socket', () => {
  let redis: TestRedis;
  let a: TestBroker;
  let b: TestBroker;
  let admin: Redis;

  beforeAll(async () => {
    redis = await TestRedis.start({ unixSocket: true });
    a = await startNode(redis, { redisUrl: redis.socketUrl });
    b = await startNode(redis, { redisUrl: redis.socketUrl });
    // The test looks on over TCP: the server listens on both.
    admin = new Redis(redis.url, { retryStrategy: () => 50 });
  });
  afterAll(async () => {
    admin?.disconnect();
    await Promise.all([a?.close(), b?.close()]);
    await redis?.stop();
  });

  /** The clients of the nodes (named sb-<node>…), each with the address it came from. */
  const nodeClients = async () =>
    (await admin.client('LIST') as string).split('\n').map((line) => ({ name: /\bname=(\S*)/.exec(line)?.[1] ?? '', addr: /\baddr=(\S*)/.exec(line)?.[1] ?? '' })).filter((c) => c.name.startsWith('sb-'));

  it('each node reaches Redis only through the socket: commands, subscribers and heartbeat', async () => {
    // Per node: its commands (sb-<id>), its subscribers (-sub, -calls-sub) and its heartbeat thread's (-hb, at its first tick).
    await until(async () => (await nodeClients()).filter((c) => c.name.endsWith('-hb')).length === 2, 'both heartbeat threads connected');
    const clients = await nodeClients();
    const roles = (c: { name: string }) => c.name.replace(/^sb-[0-9a-f]+/, '');
    expect(clients.map(roles).sort()).toEqual(['', '', '-calls-sub', '-calls-sub', '-hb', '-hb', '-sub', '-sub']);
    for (const c of clients) expect(c.addr).toBe(`${redis.socketPath}:0`);
    expect(await health(a)).toBe('running');
  });

  it('a message published on one node reaches a subscriber on the other, numbered, and again after Redis restarts on the same path', async () => {
    const sub = await TestClient.connect(b.url);
    const pub = await TestClient.connect(a.url);
    await sub.request({ op: 'sub', topic: 'unix/t' });
    const ack = await pub.request({ op: 'pub', topic: 'unix/t', data: 'one', id: 'p1' });
    expect(ack).toMatchObject({ op: 'ack', seq: 1 });
    expect(await sub.next((f) => f.op === 'msg' && f.topic === 'unix/t')).toMatchObject({ data: 'one', seq: 1, epoch: ack.epoch });

    // Redis restarts empty on the same socket path: the nodes connect again through it.
    await redis.stop();
    await redis.restart();
    await until(async () => (await health(a)) === 'running' && (await health(b)) === 'running', 'both nodes on the restarted Redis', 15_000);
    await until(async () => (await nodeClients()).filter((c) => c.name.endsWith('-sub')).length === 4, 'both nodes\' subscribers back', 15_000);
    const sub2 = await TestClient.connect(b.url);
    await sub2.request({ op: 'sub', topic: 'unix/t' });
    // A publish refused as `unavailable` surely did not run: again, until the node has the new Redis.
    let next = await pub.request({ op: 'pub', topic: 'unix/t', data: 'two', id: 'p2' });
    for (let i = 0; next.op === 'error' && next.code === 'unavailable' && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 20));
      next = await pub.request({ op: 'pub', topic: 'unix/t', data: 'two', id: 'p2' });
    }
    expect(next).toMatchObject({ op: 'ack', seq: 1 });
    expect(next.epoch).not.toBe(ack.epoch);
    expect(await sub2.next((f) => f.op === 'msg' && f.topic === 'unix/t')).toMatchObject({ data: 'two', seq: 1 });
    for (const c of [sub, sub2, pub]) c.close();
  }, 60_000);
});

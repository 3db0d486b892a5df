// A cluster node serves one session's requests in order, each after the one before it (the Redis round trips), so
// requests a client sent just before it closed still run after its leave. A `sub` then subscribed a gone client for
// good (a join never followed by a leave, messages counted as delivered to it), and a `rename` put it back in the
// node's registry under the new name (a ghost that took directs to that name, acked, and kept it from everyone).
// Redis is paused (SIGSTOP) to hold the requests in their queue while the close is handled.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('cluster: requests queued before a close');

describe.skipIf(!run)('requests a client queued before it closed', () => {
  let redis: TestRedis;
  let a: TestBroker;
  let b: TestBroker;
  const clients: TestClient[] = [];
  const connect = async (node: TestBroker, query = '') => {
    const c = await TestClient.connect(node.url + query);
    clients.push(c);
    return c;
  };
  /** `c` sends `who` (held by the paused Redis) then `frame`, and closes; node A handles the close; Redis comes back. */
  async function queuedThenClosed(c: TestClient, frame: Record<string, unknown>): Promise<void> {
    const id = c.hello.client.id as string;
    redis.pause();
    try {
      c.send({ op: 'who', id: 'w1' });
      c.send({ ...frame, id: 'r1' });
      c.close();
      await until(() => ![...a.hub.sessions()].some((s) => s.id === id), 'node A handling the close');
    } finally {
      redis.resume();
    }
  }

  beforeAll(async () => {
    redis = await TestRedis.start();
    a = await startNode(redis);
    b = await startNode(redis);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('a sub: the gone client is not subscribed — nothing delivered to it, no join for it', async () => {
    const watcher = await connect(b);
    await watcher.request({ op: 'sub', topic: 'lobby', presence: true });
    const x = await connect(a);
    await queuedThenClosed(x, { op: 'sub', topic: 'lobby' });
    // Node A's commands go to Redis in order: X's queued requests run before this publish is answered.
    const p = await connect(a);
    expect(await p.request({ op: 'pub', topic: 'lobby', data: 1 })).toMatchObject({ op: 'ack', delivered: 0 }); // 1: the ghost
    await watcher.next((f) => f.op === 'msg' && f.data === 1);
    expect(await watcher.quiet((f) => f.op === 'event' && f.client?.id === x.hello.client.id && f.event === 'join')).toBe(true);
  });

  it('a rename: the name is freed, taken by a client on another node, and a direct to it from node A reaches that client', async () => {
    const z = await connect(a);
    await queuedThenClosed(z, { op: 'rename', name: 'zelda' });
    // Free once the queued rename's claim is undone (at once, unless node A kept it for a ghost: then never).
    const v = await connect(a);
    await until(async () => (await v.request({ op: 'rename', name: 'zelda' })).op === 'ack', 'zelda free on node A', 5000);
    await v.request({ op: 'rename', name: 'vera' });
    const zelda = await connect(b, '?name=zelda');
    expect(zelda.hello.client.name).toBe('zelda');
    const s = await connect(a);
    expect(await s.request({ op: 'send', to: 'zelda', data: 'hi' })).toMatchObject({ op: 'ack' });
    expect((await zelda.next((f) => f.op === 'direct')).data).toBe('hi'); // swallowed by the ghost on node A before
  });
});

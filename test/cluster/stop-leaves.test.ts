// A node that stops cleanly while one of its clients' leave is still waiting its turn (that client's earlier request
// is not answered yet: here a pub whose ack waits up to 4 s for its echo, the node's subscriber being away) withdrew from the cluster after 2 s all the same: its heartbeat,
// its node set entry and its client set went, and the leave that never ran left the client's record and name in
// Redis for ever (`who` listed it, its name was never free again, and no watcher heard it end: nobody reaps a node
// that withdrew). Now the withdrawal ends the clients it still holds, as the reaper would (a `leave` each).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxiedNodes, redisCli, RedisProxy, requireRedis, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const SUBSCRIBER = /subscribe/i;
const run = requireRedis('a node stopping with a leave not yet run', true);

describe.skipIf(!run)('cluster: a node stops while a client\'s leave waits its turn', () => {
  let redis: TestRedis;
  let proxy: RedisProxy;
  let a: TestBroker;
  let b: TestBroker;
  const clients: TestClient[] = [];

  const nodes = proxiedNodes({ nodeTtlMs: 20_000 });
  beforeAll(() => void ({ redis, proxy, a, b } = nodes));
  afterAll(() => {
    for (const c of clients) c.close();
  });

  it('its record and name go, and watchers hear it end', async () => {
    const watcher = await TestClient.connect(b.url + '?name=watcher');
    clients.push(watcher);
    expect(await watcher.request({ op: 'sub', topic: 'stop/#', presence: true })).toMatchObject({ op: 'ack' });
    const ghost = await TestClient.connect(a.url + '?name=ghost7');
    clients.push(ghost);
    expect(await ghost.request({ op: 'sub', topic: 'stop/#' })).toMatchObject({ op: 'ack' });
    expect(await watcher.next((f) => f.op === 'event' && f.client?.name === 'ghost7')).toMatchObject({ event: 'join', topic: 'stop/#', client: { id: ghost.hello.client.id, transport: 'ws' } });

    // Node A's subscriber connection is dropped and cannot come back; its command connection stays up. A pub the
    // node hears waits for its echo (2 s, then a read of the stream, then 2 s more): the client's leave waits behind it.
    proxy.refuseNew();
    proxy.kill(SUBSCRIBER);
    await until(() => !proxy.hasConnection(SUBSCRIBER), 'the subscriber down', 5000);
    ghost.send({ op: 'pub', topic: 'stop/room', data: 1, id: 'p' });
    await until(() => proxy.forwarded('stop/room'), 'the publish sent', 5000);
    await a.close();
    await until(async () => (await redisCli(redis.port, 'HGET', 'sb:{g}:names', 'ghost7')) === '', 'ghost7 freed', 5000);
    expect(await redisCli(redis.port, 'HLEN', 'sb:{g}:clients')).toBe('1'); // the watcher's record only
    const ended = await watcher.next((f) => f.op === 'event' && f.client?.name === 'ghost7' && f.event !== 'join', 5000);
    expect(ended).toMatchObject({ event: 'leave', topic: 'stop/#' });
    // Once (node A is closed: its leave that waited, run later, reaches no Redis).
    expect(await watcher.quiet((f) => f.op === 'event' && f.client?.name === 'ghost7')).toBe(true);
    const who = await watcher.request({ op: 'who' });
    expect((who.clients as { name: string }[]).map((c) => c.name)).toEqual(['watcher']);
    const again = await TestClient.connect(b.url + '?name=ghost7');
    clients.push(again);
    expect(again.hello.client.name).toBe('ghost7');
  }, 60_000);
});

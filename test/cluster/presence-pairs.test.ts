// Presence events about one client come in pairs on every node: a watcher never hears a `leave` of a client it never
// heard `join` (found by a review helper). A client whose sub was waiting on Redis (its record's write) when it disconnected had its
// join skipped ("gone meanwhile") while its leave, queued behind the sub, still announced that filter.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxiedNodes, requireRedis, RedisProxy, until } from './redis.js';
import { TestClient, type Frame } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('presence pairs across nodes');

describe.skipIf(!run)('cluster: presence events of a client that leaves while its sub waits on Redis', () => {
  let proxy: RedisProxy;
  let a: TestBroker;
  let b: TestBroker;
  const clients: TestClient[] = [];
  const nodes = proxiedNodes({ nodeTtlMs: 30_000, nodeTickMs: 250 });
  beforeAll(() => void ({ proxy, a, b } = nodes));
  afterAll(() => {
    for (const c of clients) c.close();
  });

  const about = (id: string, topic: string) => (f: Frame) => f.op === 'event' && f.client?.id === id && f.topic === topic;

  it('a sub whose record write is still out when the client leaves: the watcher hears join then leave, or nothing', async () => {
    const watcher = await TestClient.connect(b.url);
    clients.push(watcher);
    await watcher.request({ op: 'sub', topic: 'pp/1', presence: true });
    const x = await TestClient.connect(a.url);
    clients.push(x);
    const id = x.hello.client.id as string;

    proxy.hold('"subs":["pp/1"]'); // the record's write (MIRROR_CLIENT) of the sub, and what follows it on A's connection
    x.send({ op: 'sub', topic: 'pp/1', id: 's1' });
    await until(() => proxy.held, 'the record write held at the proxy', 5000);
    x.close();
    await x.closed;
    await until(() => a.hub.inspect.findClient(id) === undefined, 'A took the leave (its turn is behind the sub\'s)');
    proxy.release();

    // Whatever A announces about x on pp/1 has reached B's watcher by the time a later event of A's does.
    const marker = await TestClient.connect(a.url);
    clients.push(marker);
    await marker.request({ op: 'sub', topic: 'pp/1' });
    await watcher.next((f) => f.op === 'event' && f.client?.id === marker.hello.client.id, 5000);
    await until(async () => watcher.quiet(() => false), 'barrier', 3000);

    const events = watcher.all.filter(about(id, 'pp/1')).map((f) => f.event as string);
    expect(['', 'join,leave']).toContain(events.join(','));
  });

  it('a filter asked for at connect: a watcher that heard its join finds the client in who (the record is written first)', async () => {
    const watcher = await TestClient.connect(b.url);
    clients.push(watcher);
    await watcher.request({ op: 'sub', topic: 'pp/adm', presence: true });
    proxy.hold('"subs":["pp/adm"]', { fromCommand: true }); // the record's write with the filter; commands before it pass
    const x = await TestClient.connect(a.url + '?topics=pp/adm');
    clients.push(x);
    const id = x.hello.client.id as string;
    await until(() => proxy.held, 'the record write held at the proxy', 5000);
    const joined = (f: Frame) => about(id, 'pp/adm')(f) && f.event === 'join';
    const early = await watcher.next(joined, 1000).then(
      () => true,
      () => false,
    );
    const listed = async () => ((await watcher.request({ op: 'who', topic: 'pp/adm' })).clients as { id: string }[]).map((c) => c.id);
    const whoWhenJoinHeard = early ? await listed() : undefined;
    proxy.release();
    if (!early) await watcher.next(joined, 5000);
    expect(whoWhenJoinHeard ?? (await listed()), 'who on B right after B heard the join').toContain(id);
  });
});

// The application backend and the server API on a two-node cluster, as one broker: topic.occupied / topic.vacated
// said once for the whole cluster (first subscriber anywhere in, last out; a dead node's topics vacated by a
// survivor), the connect hook's `meta` in presence and `who` on every node, disconnect / subscribe / unsubscribe of
// a client on another node than the one asked (404 only when no node has it; 504 when its node does not answer),
// and publish idempotency keys remembered by the cluster. Real HTTP backend, real Redis, real processes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST_NODE_FLAGS, REAP_GUARD_MS, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';
import { spawnBroker, type ChildBroker } from '../helpers/child-broker.js';

const run = requireRedis('cluster deployment');

interface HookEvent {
  id: string;
  type: string;
  topic?: string;
  client?: { name: string; meta?: unknown };
}

describe.skipIf(!run)('the backend and the server API on a two-node cluster', () => {
  let redis: TestRedis;
  let backend: BackendProcess;
  let a: TestBroker;
  let b: TestBroker;
  let child: ChildBroker | undefined;
  const hooked = { hooks: 'connect,events', webhookRetryMs: 20 } as const;

  beforeAll(async () => {
    redis = await TestRedis.start();
    backend = await startBackend();
    await backend.script({ connect: { by: { doomed: { meta: { role: 'operator' } }, metaguy: { meta: { role: 'viewer', desk: 3 } } } } });
    // a answers server API commands for other nodes' clients within 500 ms (its --redis-timeout-ms).
    a = await startNode(redis, { hookUrl: backend.url, ...hooked, redisTimeoutMs: 500 });
    b = await startNode(redis, { hookUrl: backend.url, ...hooked });
  });
  afterAll(async () => {
    if (child?.child.exitCode === null) child.child.kill('SIGKILL');
    await a?.close();
    await b?.close();
    await backend?.stop();
    await redis?.stop();
  });

  /** Every webhook event the backend got, once each (delivery is at least once). */
  async function events(): Promise<HookEvent[]> {
    const seen = new Map<string, HookEvent>();
    for (const call of await backend.calls()) if (call.kind === 'events') for (const e of call.body.events as HookEvent[]) seen.set(e.id, e);
    return [...seen.values()];
  }
  const count = async (type: string, topic: string) => (await events()).filter((e) => e.type === type && e.topic === topic).length;
  /** Waits until `type` was told of `topic` once. */
  const told = (type: string, topic: string, ms?: number) => until(async () => (await count(type, topic)) >= 1, `${type} ${topic}`, ms);
  const api = (node: { httpUrl: string }, path: string, body: unknown) =>
    fetch(`${node.httpUrl}${path}`, { method: 'POST', body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  const whoNames = async (node: { httpUrl: string }, topic: string) => ((await (await fetch(`${node.httpUrl}/api/who?topic=${encodeURIComponent(topic)}`)).json()) as { clients: { name: string }[] }).clients.map((c) => c.name);

  it('topic.occupied and topic.vacated are said once for the whole cluster: first subscriber anywhere in, last out', async () => {
    const x = await TestClient.connect(`${a.url}?name=x`);
    await x.request({ op: 'sub', topic: 'room/1' });
    await told('topic.occupied', 'room/1');
    const y = await TestClient.connect(`${b.url}?name=y`);
    await y.request({ op: 'sub', topic: 'room/1' });
    // Each node's webhooks go out in order: once b told of a later topic, it told (or not) of room/1 before.
    await y.request({ op: 'sub', topic: 'mark/b1' });
    await told('topic.occupied', 'mark/b1');
    expect(await count('topic.occupied', 'room/1')).toBe(1);
    // x leaves room/1 on a: y on b still holds it.
    await x.request({ op: 'unsub', topic: 'room/1' });
    await x.request({ op: 'sub', topic: 'mark/a1' });
    await told('topic.occupied', 'mark/a1');
    expect(await count('topic.vacated', 'room/1')).toBe(0);
    // The last holder anywhere leaves: vacated, once.
    y.close();
    await told('topic.vacated', 'room/1');
    const z = await TestClient.connect(b.url);
    await z.request({ op: 'sub', topic: 'mark/b2' });
    await told('topic.occupied', 'mark/b2');
    expect(await count('topic.vacated', 'room/1')).toBe(1);
    // And occupied again when someone comes back, once.
    await x.request({ op: 'sub', topic: 'room/1' });
    await until(async () => (await count('topic.occupied', 'room/1')) === 2, 'occupied again');
    x.close();
    z.close();
  });

  it('meta from the connect hook shows in presence events and who on the other node', async () => {
    const watcher = await TestClient.connect(a.url);
    await watcher.request({ op: 'sub', topic: 'm/1', presence: true });
    const guy = await TestClient.connect(`${b.url}?name=metaguy`);
    await guy.request({ op: 'sub', topic: 'm/1' });
    const join = await watcher.next((f) => f.op === 'event' && f.event === 'join' && f.client.name === 'metaguy');
    expect(join.client.meta).toEqual({ role: 'viewer', desk: 3 });
    const who = await watcher.request({ op: 'who', topic: 'm/1' });
    expect(who.clients.find((c: { name: string }) => c.name === 'metaguy')?.meta).toEqual({ role: 'viewer', desk: 3 });
    guy.close();
    const leave = await watcher.next((f) => f.op === 'event' && f.event === 'leave' && f.client.name === 'metaguy');
    expect(leave.client.meta).toEqual({ role: 'viewer', desk: 3 });
    watcher.close();
  });

  it('subscribe, unsubscribe and disconnect a client of the other node; 404 only when no node has it', async () => {
    const far = await TestClient.connect(`${b.url}?name=far`);
    await far.request({ op: 'sub', topic: 'keep' });
    const sub = await api(a, '/api/clients/subscribe', { client: 'far', topic: 'news' });
    expect(sub).toEqual({ status: 200, body: { client: { id: far.hello.client.id, name: 'far' }, topic: 'news', subscribed: true } });
    await until(async () => (await whoNames(a, 'news')).includes('far'), 'far subscribed to news');
    await api(a, '/api/publish', { topic: 'news', data: 'n1' });
    expect((await far.next((f) => f.op === 'msg')).data).toBe('n1');

    expect((await api(a, '/api/clients/unsubscribe', { client: far.hello.client.id, topic: 'news' })).body).toMatchObject({ unsubscribed: true });
    await until(async () => !(await whoNames(a, 'news')).includes('far'), 'far unsubscribed from news');
    await api(a, '/api/publish', { topic: 'news', data: 'n2' });
    await api(a, '/api/publish', { topic: 'keep', data: 'k1' });
    expect((await far.next((f) => f.op === 'msg' && f.data !== 'n1')).data).toBe('k1');

    // A bad filter is refused before anything is sent; a client no node has is 404.
    expect((await api(a, '/api/clients/subscribe', { client: 'far', topic: 'a/#/b' })).status).toBe(400);
    expect(await api(a, '/api/clients/disconnect', { client: 'nobody' })).toMatchObject({ status: 404, body: { error: 'not_found' } });
    const bye = await api(a, '/api/clients/disconnect', { client: 'far', code: 4100, reason: 'moved' });
    expect(bye).toEqual({ status: 200, body: { disconnected: { id: far.hello.client.id, name: 'far' }, code: 4100, reason: 'moved' } });
    expect(await far.closed).toEqual({ code: 4100, reason: 'moved' });
  });

  it('an idempotency key is remembered by the cluster: the same key through both nodes at once publishes once', async () => {
    const reader = await TestClient.connect(b.url);
    await reader.request({ op: 'sub', topic: 'orders' });
    const body = { topic: 'orders', data: { n: 1 }, idempotencyKey: 'order-1' };
    const [one, two] = await Promise.all([api(a, '/api/publish', body), api(b, '/api/publish', body)]);
    expect(one.status).toBe(200);
    expect(two.status).toBe(200);
    expect(one.body.seq).toBe(two.body.seq);
    expect([one.body.duplicate, two.body.duplicate].filter((d) => d === true)).toHaveLength(1);
    expect((await api(b, '/api/publish', body)).body).toMatchObject({ seq: one.body.seq, duplicate: true });
    const next = await api(a, '/api/publish', { topic: 'orders', data: { n: 2 } });
    expect(next.body.seq).toBe(one.body.seq + 1);
    // The reader got the keyed message once, then the next.
    expect((await reader.next((f) => f.op === 'msg')).data).toEqual({ n: 1 });
    expect((await reader.next((f) => f.op === 'msg')).data).toEqual({ n: 2 });
    reader.close();
  });

  it('a node that does not answer: 504 (outcome unknown, and it does happen later); a node killed: its topics vacated by a survivor, its clients time out with their meta', { timeout: 60_000 }, async () => {
    child = await spawnBroker(['--redis', redis.url, ...FAST_NODE_FLAGS, '--hook-url', backend.url, '--hooks', 'connect,events', '--webhook-retry-ms', '20']);
    const url = `ws://127.0.0.1:${child.port}/ws`;
    const watcher = await TestClient.connect(a.url);
    await watcher.request({ op: 'sub', topic: 'm/2', presence: true });
    const doomed = await TestClient.connect(`${url}?name=doomed`);
    await doomed.request({ op: 'sub', topic: 'solo/1' });
    await doomed.request({ op: 'sub', topic: 'm/2' });
    await told('topic.occupied', 'solo/1');
    const sleepy = await TestClient.connect(`${url}?name=sleepy`);

    process.kill(child.child.pid!, 'SIGSTOP');
    let answer: { status: number; body: any };
    try {
      answer = await api(a, '/api/clients/disconnect', { client: 'sleepy' });
    } finally {
      process.kill(child.child.pid!, 'SIGCONT');
    }
    expect(answer).toMatchObject({ status: 504, body: { error: 'outcome_unknown' } });
    // The node took the command before it froze: it runs it once it thaws, as the answer warned.
    expect(await sleepy.closed).toMatchObject({ code: 4004 });

    child.child.kill('SIGKILL');
    const timeout = await watcher.next((f) => f.op === 'event' && f.event === 'timeout' && f.client.name === 'doomed', REAP_GUARD_MS);
    expect(timeout.client.meta).toEqual({ role: 'operator' });
    await told('topic.vacated', 'solo/1', REAP_GUARD_MS);
    // Once: each survivor's later event proves it said nothing more of solo/1.
    for (const [node, mark] of [[a, 'mark/late-a'], [b, 'mark/late-b']] as const) {
      const late = await TestClient.connect(node.url);
      await late.request({ op: 'sub', topic: mark });
      await told('topic.occupied', mark);
      late.close();
    }
    expect(await count('topic.vacated', 'solo/1')).toBe(1);
    watcher.close();
  });
});

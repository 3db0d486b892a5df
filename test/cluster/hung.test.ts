// A Redis that hangs (SIGSTOP: connections open, nothing answered) is not a Redis that is gone. A publish whose
// script was sent but not answered may run when Redis wakes: it answers `outcome_unknown` (HTTP 504), never
// `unavailable` (which promises nothing happened), and the node reports itself degraded within a few of its
// --redis-timeout-ms, until Redis answers again. The test shows the publish did happen after all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { health, RedisProxy, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import { SseClient } from '../helpers/sse-client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('cluster hung redis');

describe.skipIf(!run)('cluster: a hung Redis', () => {
  let redis: TestRedis;
  let node: TestBroker;
  let other: TestBroker;
  let proxy: RedisProxy;
  let behind: TestBroker; // its Redis connections go through the proxy
  const clients: TestClient[] = [];

  // Short, so a hung Redis shows quickly, but not shorter than a Redis on a loaded machine takes to answer: at 300 ms
  // a node beside other suites (load 38 on the 2 cores) could not even start ("cannot reach Redis").
  const REDIS_TIMEOUT_MS = 1000;

  /**
   * Sends (`send`) what writes a command carrying `text` on the node behind the proxy, and breaks its connection while
   * the command is out: Redis, stopped, has it in its socket and runs it when it wakes (resume() after restore()).
   */
  async function cutWhileOut<T>(text: string, send: () => Promise<T>): Promise<T> {
    proxy.hold(text);
    const answer = send();
    await until(() => proxy.held, `the command carrying ${text} held at the proxy`, 5000);
    redis.pause();
    proxy.release();
    await until(() => proxy.forwarded(text), `the command carrying ${text} sent towards Redis`, 5000);
    await proxy.cut();
    return answer;
  }

  beforeAll(async () => {
    redis = await TestRedis.start();
    node = await startNode(redis, { redisTimeoutMs: REDIS_TIMEOUT_MS, nodeTickMs: 100, nodeTtlMs: 5000 });
    other = await startNode(redis, { redisTimeoutMs: REDIS_TIMEOUT_MS, nodeTickMs: 100, nodeTtlMs: 5000 });
    proxy = await RedisProxy.start(redis.port);
    behind = await startNode(redis, { redisUrl: proxy.url, redisTimeoutMs: 10_000, nodeTickMs: 100, nodeTtlMs: 5000 });
  });
  afterAll(async () => {
    redis?.resume();
    for (const c of clients) c.close();
    await node?.close();
    await other?.close();
    await behind?.close();
    await proxy?.cut();
    await redis?.stop();
  });

  it('a publish Redis did not answer is outcome_unknown (it may have happened, and did); the node is degraded meanwhile', async () => {
    const sub = await TestClient.connect(node.url);
    const pub = await TestClient.connect(node.url);
    clients.push(sub, pub);
    await sub.request({ op: 'sub', topic: 'hung/t' });
    expect(await pub.request({ op: 'pub', topic: 'hung/t', data: 'before' })).toMatchObject({ op: 'ack', seq: 1 });

    redis.pause();
    const during = await pub.request({ op: 'pub', topic: 'hung/t', data: 'during' });
    expect(during).toMatchObject({ op: 'error', code: 'outcome_unknown' });
    const api = await fetch(`${node.httpUrl}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'hung/t', data: 'api' }) });
    expect(api.status).toBe(504);
    expect(await api.json()).toMatchObject({ error: 'outcome_unknown' });
    await until(async () => (await health(node)) === 'degraded', '/healthz degraded while Redis hangs', 10 * REDIS_TIMEOUT_MS);

    redis.resume();
    await until(async () => (await health(node)) === 'running', '/healthz running once Redis answers', 10_000);
    // Both "unknown" publishes ran when Redis woke: had they been answered unavailable, a retry would double them.
    const after = await pub.request({ op: 'pub', topic: 'hung/t', data: 'after' });
    expect(after).toMatchObject({ op: 'ack', seq: 4 });
    await sub.next((f) => f.op === 'msg' && f.data === 'after');
    expect(sub.all.filter((f) => f.op === 'msg').map((f) => `${f.seq}:${f.data}`)).toEqual(['1:before', '2:during', '3:api', '4:after']);
  }, 30_000);

  it('an SSE POST for a stream on another node while Redis hangs: 503, for the call was never sent (nothing delivered)', async () => {
    await until(async () => (await health(node)) === 'running' && (await health(other)) === 'running', 'both nodes running', 10_000);
    const sse = await SseClient.open(other.httpUrl, '/sse');
    // The call's first step, reading whether the stream's node is alive, gets no answer: it stops there.
    redis.pause();
    let res: Response;
    try {
      res = await fetch(`${node.httpUrl}${sse.post}`, { method: 'POST', body: '{"op":"sub","topic":"never/sent","id":"s1"}' });
    } finally {
      redis.resume();
    }
    expect({ status: res.status, body: await res.json() }).toMatchObject({ status: 503, body: { error: 'unavailable' } });
    // Once Redis answers, a later POST goes through; the first never arrived.
    await until(async () => (await fetch(`${node.httpUrl}${sse.post}`, { method: 'POST', body: '{"op":"ping","id":"p1"}' })).status === 202, 'a POST after Redis woke', 10_000);
    await sse.frame((f) => f.id === 'p1');
    expect(sse.all.some((e) => e.frame?.id === 's1')).toBe(false);
    sse.req.destroy();
  }, 30_000);

  it('a keyed pub answered outcome_unknown is retried safely: the retry, on another node, is acked duplicate and the message exists once', async () => {
    const sub = await TestClient.connect(other.url);
    const pub = await TestClient.connect(node.url);
    clients.push(sub, pub);
    await sub.request({ op: 'sub', topic: 'hung/k' });
    await until(async () => (await health(node)) === 'running' && (await health(other)) === 'running', 'both nodes running', 10_000);

    redis.pause();
    const during = await pub.request({ op: 'pub', topic: 'hung/k', data: 'exactly once', key: 'order-7' });
    expect(during).toMatchObject({ op: 'error', code: 'outcome_unknown' });
    redis.resume();
    await until(async () => (await health(node)) === 'running' && (await health(other)) === 'running', 'both nodes running once Redis answers', 10_000);

    // The client does not know whether it happened: it retries with the same key, here through the other node.
    const retry = await TestClient.connect(other.url);
    clients.push(retry);
    const again = await retry.request({ op: 'pub', topic: 'hung/k', data: 'exactly once', key: 'order-7' });
    expect(again).toMatchObject({ op: 'ack', seq: 1, duplicate: true, delivered: 0 });
    const next = await retry.request({ op: 'pub', topic: 'hung/k', data: 'next', key: 'order-8' });
    expect(next).toMatchObject({ op: 'ack', seq: 2, epoch: again.epoch });
    await sub.next((f) => f.op === 'msg' && f.data === 'next');
    expect(sub.all.filter((f) => f.op === 'msg').map((f) => `${f.seq}:${f.data}`)).toEqual(['1:exactly once', '2:next']);
  }, 30_000);

  it('a connection that breaks while a keyed pub is in flight answers outcome_unknown, never unavailable; the retry is a duplicate', async () => {
    const pub = await TestClient.connect(behind.url);
    clients.push(pub);
    await until(async () => (await health(behind)) === 'running', 'the node behind the proxy running', 10_000);
    expect(await pub.request({ op: 'pub', topic: 'hung/broken', data: 'warm', key: 'warm-1' })).toMatchObject({ op: 'ack', seq: 1 });

    // The script reached Redis's socket (Redis, stopped, has not read it); then the connection breaks.
    const answer = await cutWhileOut('flight-1', () => pub.request({ op: 'pub', topic: 'hung/broken', data: 'in flight', key: 'flight-1' }));
    expect(answer).toMatchObject({ op: 'error', code: 'outcome_unknown' });
    await proxy.restore();
    redis.resume();
    await until(async () => (await health(behind)) === 'running', 'the node running once Redis answers again', 15_000);

    // Redis read the script when it woke: it ran. The retry is told so, and nothing is published twice.
    const retry = await pub.request({ op: 'pub', topic: 'hung/broken', data: 'in flight', key: 'flight-1' });
    expect(retry).toMatchObject({ op: 'ack', seq: 2, duplicate: true });
    expect(await pub.request({ op: 'pub', topic: 'hung/broken', data: 'after', key: 'after-1' })).toMatchObject({ op: 'ack', seq: 3 });
  }, 40_000);

  it('a direct whose relay went out and then lost its connection answers outcome_unknown, never unavailable: it was delivered', async () => {
    const target = await TestClient.connect(other.url);
    const sender = await TestClient.connect(behind.url);
    clients.push(target, sender);
    await until(async () => (await health(behind)) === 'running', 'the node behind the proxy running', 10_000);
    expect(await sender.request({ op: 'send', to: target.hello.client.id, data: 'warm' })).toMatchObject({ op: 'ack' });

    // The relay reaches Redis's socket while Redis is stopped; then the node's connection breaks.
    const answer = await cutWhileOut('dm-in-flight', () => sender.request({ op: 'send', to: target.hello.client.id, data: 'dm-in-flight' }));
    expect(answer).toMatchObject({ op: 'error', code: 'outcome_unknown' });
    await proxy.restore();
    redis.resume();
    // Redis read it when it woke: the direct was delivered (had the answer been `unavailable`, a retry would double it).
    expect(await target.next((f) => f.op === 'direct' && f.data === 'dm-in-flight')).toMatchObject({ from: { id: sender.hello.client.id } });
    await until(async () => (await health(behind)) === 'running', 'the node running once Redis answers again', 15_000);
  }, 40_000);

  it('a server API command to a client on another node whose call went out and then lost its connection is 504 outcome_unknown, not 503: it was carried out', async () => {
    const target = await TestClient.connect(`${other.url}?name=far-away`);
    clients.push(target);
    await until(async () => (await health(behind)) === 'running', 'the node behind the proxy running', 10_000);
    const disconnect = () => fetch(`${behind.httpUrl}/api/clients/disconnect`, { method: 'POST', body: JSON.stringify({ client: 'far-away', code: 4100, reason: 'moved' }) });

    const response = await cutWhileOut('client-command', disconnect);
    expect({ status: response.status, body: await response.json() }).toMatchObject({ status: 504, body: { error: 'outcome_unknown' } });
    await proxy.restore();
    redis.resume();
    // Redis read the call when it woke; the other node carried it out.
    expect(await target.closed).toEqual({ code: 4100, reason: 'moved' });
    await until(async () => (await health(behind)) === 'running', 'the node running once Redis answers again', 15_000);
  }, 40_000);
});

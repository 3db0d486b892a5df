// The client library against a two-node cluster: its node is killed (SIGKILL) while a publisher on the other node
// keeps publishing; the client reconnects to the surviving node (its URL list) and its subscription delivers every
// message exactly once, in order, with recovered (not notRecovered) verdicts — the resume state lives in Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST_NODE_FLAGS, requireRedis, TestRedis } from './redis.js';
import { spawnBroker, type ChildBroker } from '../helpers/child-broker.js';
import { SwitchboardClient } from '@switchboard/client';

const run = requireRedis('client failover');

describe.skipIf(!run)('client library on a cluster: a node dies', () => {
  let redis: TestRedis;
  const children: ChildBroker[] = [];
  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    await redis?.stop();
  });

  it('no loss, no duplicates: every message once and in order across the kill', async () => {
    const [n1, n2] = await Promise.all([spawnBroker(['--redis', redis.url, ...FAST_NODE_FLAGS]), spawnBroker(['--redis', redis.url, ...FAST_NODE_FLAGS])]);
    children.push(n1, n2);
    const urls = [`ws://127.0.0.1:${n1.port}/ws`, `ws://127.0.0.1:${n2.port}/ws`];
    // Both nodes' URLs: the client dials n1 first and, once it is lost, the next one.
    const client = new SwitchboardClient({ url: urls, backoff: { minMs: 50, maxMs: 300 } });
    let connects = 0;
    client.on('connected', () => connects++);
    const sub = await client.subscribe<number>('feed/+');
    const got: string[] = [];
    const notRecovered: unknown[] = [];
    sub.on('message', (m) => got.push(`${m.topic}#${m.seq}:${m.data}`));
    sub.on('notRecovered', (v) => notRecovered.push(v));

    const publisher = new SwitchboardClient({ url: urls[1]! });
    await publisher.connect();
    const sent: string[] = [];
    const publish = async (i: number) => {
      const topic = `feed/${i % 3}`;
      const ack = await publisher.publish(topic, i, { ack: true });
      sent.push(`${topic}#${(ack as { seq: number }).seq}:${i}`);
    };
    for (let i = 0; i < 30; i++) await publish(i);
    n1.child.kill('SIGKILL');
    for (let i = 30; i < 90; i++) await publish(i);
    // Everything published, before and after the kill, arrives once: wait for the last one, then compare.
    const deadline = Date.now() + 20_000;
    while (got.length < sent.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(notRecovered).toEqual([]);
    expect(connects, 'the client really moved to the other node').toBeGreaterThanOrEqual(2);
    const byTopic = (list: string[], t: string) => list.filter((s) => s.startsWith(`feed/${t}#`));
    for (const t of ['0', '1', '2']) expect(byTopic(got, t)).toEqual(byTopic(sent, t));
    expect(got.length).toBe(sent.length);
    client.close();
    publisher.close();
  }, 60_000);
});

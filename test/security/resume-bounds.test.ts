// A resume is bounded by what the resuming client's own mailbox can take: over it the broker answers
// recovered:false (replay_limit) for the topics that do not fit, and the client stays connected — a `sub # since:0`
// over a long history is an answer, never a 4001. A wildcard resume finds topics through the trie, bounded in number.
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

describe('resume bounds', () => {
  it('sub # since:0 over more messages than the mailbox holds: replay_limit, still connected', async () => {
    broker = await startTestBroker({ mailboxSize: 50, historySize: 100 });
    const pub = await TestClient.connect(broker.url);
    for (let t = 0; t < 10; t++) for (let i = 0; i < 20; i++) pub.send({ op: 'pub', topic: `many/${t}`, data: i });
    await pub.quiet(() => false);
    const sub = await TestClient.connect(broker.url);
    const ack = await sub.request({ op: 'sub', topic: '#', since: 0 });
    expect(ack).toMatchObject({ op: 'ack', recovered: false, reason: 'replay_limit' });
    const missed = Object.entries(ack.missed as Record<string, string>);
    expect(missed.length).toBeGreaterThan(0);
    expect(missed.every(([, why]) => why === 'replay_limit')).toBe(true);
    await sub.quiet(() => false);
    const replayed = sub.all.filter((f) => f.op === 'msg');
    // Whole topics only, and at most half the mailbox.
    expect(replayed.length).toBeLessThanOrEqual(25);
    expect(replayed.length % 20).toBe(0);
    for (const [topic] of missed) expect(replayed.some((m) => m.topic === topic)).toBe(false);
    expect(await sub.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
  });

  it('bounded in bytes too: big messages answer replay_limit instead of overflowing the byte bound', async () => {
    broker = await startTestBroker({ mailboxBytes: 64 * 1024 });
    const pub = await TestClient.connect(broker.url);
    const big = 'x'.repeat(20_000);
    for (let i = 0; i < 5; i++) await pub.request({ op: 'pub', topic: 'big/1', data: big });
    const sub = await TestClient.connect(broker.url);
    expect(await sub.request({ op: 'sub', topic: 'big/1', since: 0 })).toMatchObject({ recovered: false, missed: { 'big/1': 'replay_limit' } });
    expect(await sub.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(sub.ws.readyState).toBe(sub.ws.OPEN);
  });

  it('a wildcard resume pays for the topics it looks through: one matching nothing, repeated, is rate limited', async () => {
    // The walk is bounded by the topics it finds, not by those it looks at: `+/+/nomatch` over 30,000 topics visits
    // them all for a tiny ack. It was charged to nobody (found by a review helper): one client kept the broker busy.
    broker = await startTestBroker({ maxTopics: 30_000, rateBurst: 2000, rate: 1000 });
    for (let i = 0; i < 30_000; i++) broker.hub.publish(`t/${i}/x`, 0);
    const c = await TestClient.connect(broker.url);
    for (let i = 0; i < 30; i++) c.send({ op: 'sub', topic: '+/+/nomatch', since: 0, id: i });
    const last = await c.next((f) => f.id === 29, 20_000);
    const refused = c.all.filter((f) => f.op === 'error' && f.code === 'rate_limited').length;
    // Each walk costs ~470 tokens (30,000 nodes / 64): the burst of 2,000 pays for about four.
    expect(refused, JSON.stringify(last)).toBeGreaterThan(20);
    c.close();
  });
});

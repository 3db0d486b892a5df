// Nodes of one cluster with different --history (or a --history lowered between restarts): a topic's Redis list may
// hold more entries than the resuming node's --history. A resume from a position the node's --history no longer
// reaches is `history_trimmed` and replays the newest --history messages of the topic (what this node holds of it:
// docs/cluster.md, Resume). The node's read started at the client's position, so when the list held more than the
// replay budget after it, the read ended before the messages to replay began: nothing was replayed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, type Frame } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { requireRedis, startNode, TestRedis } from './redis.js';

const run = requireRedis('resume with a Redis history longer than the node\'s --history');
const PUBLISHED = 200;
const SMALL_HISTORY = 10;

describe.skipIf(!run)('a resume on a node whose --history is smaller than the Redis list', () => {
  let redis: TestRedis;
  let big: TestBroker;
  let small: TestBroker;
  let tiny: TestBroker;
  const clients: TestClient[] = [];
  /** Each topic's epoch (each topic has its own). */
  const epochs: Record<string, string> = {};
  let epoch = '';

  beforeAll(async () => {
    redis = await TestRedis.start();
    big = await startNode(redis, { historySize: 500 });
    // A mailbox of 64: a resume there may replay 32 messages (half of it), fewer than the list holds after any old position.
    small = await startNode(redis, { historySize: SMALL_HISTORY, mailboxSize: 64 });
    // A mailbox of 16: 8 messages, fewer than its --history: a trimmed replay of 10 does not fit.
    tiny = await startNode(redis, { historySize: SMALL_HISTORY, mailboxSize: 16 });
    const pub = await connect(big.url);
    for (const topic of ['mixed/t', 'mixed/u']) {
      const acks = await Promise.all(Array.from({ length: PUBLISHED }, (_, i) => pub.request({ op: 'pub', topic, data: i + 1 })));
      expect(acks.map((a) => a.seq)).toEqual(Array.from({ length: PUBLISHED }, (_, i) => i + 1));
      epochs[topic] = acks[0]!.epoch as string;
    }
    epoch = epochs['mixed/t']!;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await tiny?.close();
    await small?.close();
    await big?.close();
    await redis?.stop();
  });

  async function connect(url: string): Promise<TestClient> {
    const c = await TestClient.connect(url);
    clients.push(c);
    return c;
  }

  /** Sends `sub` on a new connection to `node`; its ack and the messages that followed it (up to a ping barrier). */
  async function resume(node: TestBroker, frame: Record<string, unknown>): Promise<{ ack: Frame; seqs: string[] }> {
    const c = await connect(node.url);
    const ack = await c.request({ op: 'sub', ...frame });
    await c.request({ op: 'ping' });
    const after = c.all.slice(c.all.indexOf(ack) + 1);
    return { ack, seqs: after.filter((f) => f.op === 'msg').map((m) => `${m.topic as string}:${m.seq as number}`) };
  }

  const newest = (topic: string, n: number) => Array.from({ length: n }, (_, i) => `${topic}:${PUBLISHED - n + 1 + i}`);

  it('since 0: history_trimmed, and the newest --history messages follow the ack', async () => {
    const { ack, seqs } = await resume(small, { topic: 'mixed/t', since: 0 });
    expect(ack).toMatchObject({ op: 'ack', recovered: false, reason: 'history_trimmed', missed: { 'mixed/t': 'history_trimmed' }, positions: { 'mixed/t': { seq: PUBLISHED, epoch } } });
    expect(seqs).toEqual(newest('mixed/t', SMALL_HISTORY));
  });

  it('a position the Redis list still holds but this node\'s --history does not: the same', async () => {
    const { ack, seqs } = await resume(small, { topic: 'mixed/t', since: 150, epoch });
    expect(ack).toMatchObject({ recovered: false, missed: { 'mixed/t': 'history_trimmed' }, positions: { 'mixed/t': { seq: PUBLISHED } } });
    expect(seqs).toEqual(newest('mixed/t', SMALL_HISTORY));
  });

  it('a position within this node\'s --history: recovered, exactly what followed it', async () => {
    const { ack, seqs } = await resume(small, { topic: 'mixed/t', since: PUBLISHED - 4, epoch });
    expect(ack).toMatchObject({ recovered: true });
    expect(seqs).toEqual(newest('mixed/t', 4));
  });

  it('a wildcard with a map: each trimmed topic replays its newest --history messages', async () => {
    const { ack, seqs } = await resume(small, { topic: 'mixed/+', since: { 'mixed/t': 3, 'mixed/u': 120 }, epoch: epochs });
    expect(ack).toMatchObject({ recovered: false, missed: { 'mixed/t': 'history_trimmed', 'mixed/u': 'history_trimmed' } });
    expect(seqs).toEqual([...newest('mixed/t', SMALL_HISTORY), ...newest('mixed/u', SMALL_HISTORY)]);
  });

  it('a replay charged to the client\'s budget: one that does not fit replays nothing, still history_trimmed', async () => {
    const { ack, seqs } = await resume(tiny, { topic: 'mixed/t', since: 0 });
    expect(ack).toMatchObject({ recovered: false, missed: { 'mixed/t': 'history_trimmed' }, positions: { 'mixed/t': { seq: PUBLISHED } } });
    expect(seqs).toEqual([]);
    // Within the budget it replays: a position 5 behind.
    const near = await resume(tiny, { topic: 'mixed/t', since: PUBLISHED - 5, epoch });
    expect(near.ack).toMatchObject({ recovered: true });
    expect(near.seqs).toEqual(newest('mixed/t', 5));
  });
});

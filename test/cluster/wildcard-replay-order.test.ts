// A wildcard resume that the replay budget cannot serve whole: which topic is left out (`replay_limit`), the ack's
// `reason` and the replay's order must not depend on the engine. A cluster node (stream-resume.ts) takes the
// filter's topics in sorted order; the in-memory history took them in the order they were first published (the
// topic trie's insertion order), so the same request was answered with the other topic missed (found by the
// differential test, test/cluster/differential.prop.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient, type Frame } from '../helpers/client.js';
import { redisCli, requireRedis, startNode, TestRedis } from './redis.js';

const run = requireRedis('wildcard-replay-order.test.ts', true);
/** mailboxSize 10: one resume may replay 5 messages (half the mailbox). */
const LIMITS = { historySize: 10, mailboxSize: 10 };

async function scenario(url: string): Promise<{ ack: Frame; replay: string[] }> {
  const pub = await TestClient.connect(url);
  const sub = await TestClient.connect(url);
  try {
    // a/y first, then a/x: three messages each, six in all, one topic's worth more than the budget.
    for (const topic of ['a/y', 'a/x']) for (let i = 1; i <= 3; i++) await pub.request({ op: 'pub', topic, data: `${topic} ${i}` });
    const ack = await sub.request({ op: 'sub', topic: 'a/+', since: 0, id: 'r' });
    await sub.quiet(() => false);
    const replay = sub.all.slice(sub.all.indexOf(ack) + 1).filter((f) => f.op === 'msg').map((f) => `${f.topic}#${f.seq}`);
    return { ack, replay };
  } finally {
    pub.close();
    sub.close();
  }
}

describe.runIf(run)('wildcard resume over the replay budget', () => {
  let redis: TestRedis;
  let broker: TestBroker;
  let node: TestBroker;
  beforeAll(async () => {
    redis = await TestRedis.start();
    await redisCli(redis.port, 'FLUSHALL');
    broker = await startTestBroker(LIMITS);
    node = await startNode(redis, LIMITS);
  });
  afterAll(async () => {
    await broker?.close();
    await node?.close();
    await redis?.stop();
  });

  for (const which of ['in-memory', 'cluster'] as const) {
    it(`${which}: takes the topics in sorted order, as the other engine does`, async () => {
      const { ack, replay } = await scenario(which === 'cluster' ? node.url : broker.url);
      expect(ack).toMatchObject({ recovered: false, reason: 'replay_limit', missed: { 'a/y': 'replay_limit' } });
      expect(Object.keys(ack.missed)).toEqual(['a/y']);
      expect(Object.keys(ack.positions)).toEqual(['a/x', 'a/y']);
      expect(replay).toEqual(['a/x#1', 'a/x#2', 'a/x#3']);
    });
  }
});

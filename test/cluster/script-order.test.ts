// One client's publishes keep their order when Redis does not know the publish script yet: on a fresh Redis, and
// after SCRIPT FLUSH (four times) in the middle of a stream of pipelined publishes (a NOSCRIPT answer retried as EVAL must not
// let a later EVALSHA overtake it). The seqs the subscriber receives follow the order the publisher sent.
// Without the ordered reload in RedisEngine.script() this caught the reorder in about 1 run in 2 (3 of 6; 0 of 24 with it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisCli, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('script order');

describe.skipIf(!run)('publish script loading keeps one publisher in order', () => {
  let redis: TestRedis;
  let node: TestBroker;
  beforeAll(async () => {
    redis = await TestRedis.start();
    node = await startNode(redis);
  });
  afterAll(async () => {
    await node?.close();
    await redis?.stop();
  });

  it('a fresh Redis and SCRIPT FLUSHes mid-stream: every message in the order sent, seqs gapless', async () => {
    const sub = await TestClient.connect(`${node.url}?topics=ord/x`);
    const pub = await TestClient.connect(node.url);
    const N = 800;
    for (let i = 0; i < N; i++) {
      // Spread over many turns so that publishes are in flight while Redis answers NOSCRIPT to the earlier ones.
      pub.send({ op: 'pub', topic: 'ord/x', data: i });
      if (i % 4 === 3) await new Promise((r) => setImmediate(r));
      // Awaited in this process, the node's EVALSHAs flowing meanwhile: the flush lands among EVALSHAs in flight. With
      // ScriptRunner's NOSCRIPT gate taken out, caught 12 of 36 runs; 6 of 36 with the blocking redis-cli it replaced.
      if (i % 200 === 100) await redisCli(redis.port, 'SCRIPT', 'FLUSH');
    }
    await until(() => sub.all.filter((f) => f.op === 'msg').length >= N, 'every message at the subscriber', 15_000);
    const msgs = sub.all.filter((f) => f.op === 'msg');
    const data = msgs.map((m) => m.data as number);
    const first = data.findIndex((d, i) => d !== i);
    expect(first, `out of place from ${first}: ${JSON.stringify(data.slice(first - 2, first + 12))}; publisher errors: ${JSON.stringify(pub.all.filter((f) => f.op === 'error').slice(0, 3))}`).toBe(-1);
    expect(msgs.map((m) => m.seq)).toEqual([...Array(N).keys()].map((i) => i + 1));
    sub.close();
    pub.close();
  });
});

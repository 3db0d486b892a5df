// Quick measurement of the cluster engine: publish→ack latency through Redis, cross-node delivery latency, and
// pipelined publishes per second, two nodes in this process on a redis-server of its own.
// Run: npx tsx test/bench/cluster-publish.ts
import { TestRedis, startNode } from '../cluster/redis.js';
import { TestClient } from '../helpers/client.js';

const pct = (xs: number[], p: number) => xs.sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!.toFixed(2);

const redis = await TestRedis.start();
const a = await startNode(redis, { rate: 0, mailboxSize: 100_000, mailboxBytes: 2 ** 30, redisMaxInflight: 100_000 });
const b = await startNode(redis, { rate: 0, mailboxSize: 100_000, mailboxBytes: 2 ** 30, redisMaxInflight: 100_000 });
const pub = await TestClient.connect(a.url);
const sub = await TestClient.connect(b.url);
await sub.request({ op: 'sub', topic: 'bench/#' });
const lat: number[] = [];
const cross: number[] = [];
for (let i = 0; i < 2000; i++) {
  const t0 = performance.now();
  const got = sub.next((f) => f.op === 'msg' && f.data === i);
  await pub.request({ op: 'pub', topic: 'bench/lat', data: i });
  lat.push(performance.now() - t0);
  await got;
  cross.push(performance.now() - t0);
}
console.log(`publish→ack (sequential, 2000): p50 ${pct(lat, 50)} ms, p99 ${pct(lat, 99)} ms`);
console.log(`publish→delivered on the other node: p50 ${pct(cross, 50)} ms, p99 ${pct(cross, 99)} ms`);
sub.inbox.length = 0;
const N = 20_000;
const t0 = performance.now();
for (let i = 0; i < N; i++) pub.send({ op: 'pub', topic: `bench/t${i % 10}`, data: i, ...(i === N - 1 && { id: 'last' }) });
await pub.next((f) => f.id === 'last', 60_000);
const t1 = performance.now();
let seen = 0;
while (seen < N) {
  await sub.next((f) => f.op === 'msg', 60_000);
  seen++;
}
const t2 = performance.now();
console.log(`pipelined: ${N} publishes acked in ${(t1 - t0).toFixed(0)} ms = ${Math.round(N / ((t1 - t0) / 1000))}/s; all delivered on the other node after ${(t2 - t0).toFixed(0)} ms`);
pub.close();
sub.close();
await a.close();
await b.close();
await redis.stop();
process.exit(0);

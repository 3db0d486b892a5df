// Flood latency: a victim's median pub→msg latency with and without a raw-socket flooder, rate limiting on and
// off. Timing comparisons flake on a loaded machine, so they live here (printed), not in the suite; the suite's
// test/security/flood.test.ts keeps the behaviour (rate_limited, 1008, every message delivered).
//   npx tsx test/bench/flood-latency.ts [--runs 3]
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Config } from '../../src/config.js';
import { startTestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { flood, floodAudience } from '../helpers/flood.js';

const { values: flags } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });

/**
 * Median time from a publisher's pub to a subscriber's msg, over `n` messages sent one after another.
 * Messages not delivered within the time budget count as infinitely late (a starved victim).
 */
async function victimLatency(pub: TestClient, sub: TestClient, n = 40, budgetMs = 1000): Promise<number> {
  const samples: number[] = [];
  const deadline = performance.now() + budgetMs;
  for (let i = 0; i < n; i++) {
    const left = deadline - performance.now();
    const t0 = performance.now();
    pub.send({ op: 'pub', topic: 'victim', data: i });
    const got = left > 0 && (await sub.next((f) => f.op === 'msg' && f.data === i, left).then(() => true, () => false));
    samples.push(got ? performance.now() - t0 : Infinity);
    if (!got) break; // starved: the rest would be later still
  }
  while (samples.length < n) samples.push(Infinity);
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

async function withFlooder(settings: Partial<Config>): Promise<{ base: number; flooded: number; flooderClose: number | 'open' }> {
  // Mailboxes big enough that the flooder is never closed as a slow reader of its own acks: only the rate limit may stop it.
  const broker = await startTestBroker({ ...settings, mailboxSize: 1_000_000, closeTimeoutMs: 100 });
  const audience = await floodAudience(broker.url, 20);
  const pub = await TestClient.connect(broker.url);
  const sub = await TestClient.connect(`${broker.url}/victim`);
  await victimLatency(pub, sub, 20); // warm-up
  const base = await victimLatency(pub, sub);
  sub.all.length = 0;
  const f = await flood(broker.url);
  await new Promise((r) => setTimeout(r, 50)); // the flood is under way
  const flooded = await victimLatency(pub, sub);
  pub.ws.terminate();
  sub.ws.terminate();
  const flooderClose = await Promise.race([f.closed, Promise.resolve('open' as const)]);
  f.stop();
  f.ws.terminate();
  for (const a of audience) a.terminate();
  await broker.close();
  return { base, flooded, flooderClose };
}

const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)} ms` : 'starved');
console.log('victim median pub→msg latency, without → with a flooder (20 readers on the flood topic)');
for (let run = 1; run <= Number(flags.runs); run++) {
  for (const [label, settings] of [
    ['limited (rate 100, burst 100, strikes 100)', { rate: 100, rateBurst: 100, rateStrikes: 100 }],
    ['unlimited (rate 0)', { rate: 0 }],
  ] as const) {
    const r = await withFlooder(settings);
    console.log(`  run ${run} ${label.padEnd(42)} ${ms(r.base)} → ${ms(r.flooded)} (x${(r.flooded / r.base).toFixed(2)}), flooder ${r.flooderClose === 'open' ? 'still open' : `closed ${r.flooderClose}`}`);
  }
}
process.exit(0);

// Micro-bench of the match cache's invalidation (issue 19, item 1): one add + remove of a wildcard filter with
// 10,000 topics cached, for filters that match none of them (`zz/+/x`, the attack), all of them (`t/+`) and a filter
// that walks every cached branch without matching (`+/+/x`). Also the cost of one cached match, as the yardstick
// the invalidation charge is set against (src/engine/memory.ts, CACHE_NODES_PER_TOKEN).
//   npx tsx test/bench/topic-index.ts [--out topic-index.json]
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TopicIndex } from '../../src/engine/topic-index.js';

const CACHED = 10_000;

function filled(): TopicIndex<number> {
  const index = new TopicIndex<number>();
  index.add('t/#', 1); // a subscriber, so matches are non-trivial
  for (let i = 0; i < CACHED; i++) index.match(`t/${i}`);
  return index;
}

/** Median µs of one add + remove of `filter`, refilling the cache each round so every round finds it full. */
function addRemove(filter: string, rounds: number): { us: number; work: number } {
  const index = filled();
  const samples: number[] = [];
  let work = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    index.add(filter, 2);
    work = index.lastInvalidationWork ?? NaN;
    index.remove(filter, 2);
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
    for (let i = 0; i < CACHED; i++) index.match(`t/${i}`); // refill what a matching filter dropped
  }
  samples.sort((a, b) => a - b);
  return { us: Math.round(samples[samples.length >> 1]! * 10) / 10, work };
}

function cachedMatchNs(): number {
  const index = filled();
  const n = 1_000_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) index.match(`t/${i % CACHED}`);
  return Math.round(Number(process.hrtime.bigint() - t0) / n);
}

const { values } = parseArgs({ options: { out: { type: 'string' } } });
addRemove('zz/+/x', 50); // warm up
const results = {
  date: new Date().toISOString(),
  node: process.version,
  cachedTopics: CACHED,
  'zz/+/x (matches none)': addRemove('zz/+/x', 200),
  '+/+/x (walks every branch, matches none)': addRemove('+/+/x', 100),
  't/+ (matches all)': addRemove('t/+', 50),
  't/# (matches all)': addRemove('t/#', 50),
  cachedMatchNs: cachedMatchNs(),
};
console.log(JSON.stringify(results, null, 2));
if (values.out) {
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(dir + values.out, JSON.stringify(results, null, 2) + '\n');
}

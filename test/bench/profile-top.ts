// Prints the top functions of a V8 .cpuprofile (from `node --cpu-prof`) by self time, and by total time
// for the broker's own code. Usage: tsx test/bench/profile-top.ts <file.cpuprofile> [n]
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}
const [file, nArg] = process.argv.slice(2);
if (!file) throw new Error('usage: profile-top <file.cpuprofile> [n]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[] };
const n = Number(nArg ?? 25);
const byId = new Map(profile.nodes.map((x) => [x.id, x]));
const parent = new Map<number, number>();
for (const x of profile.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
const total = profile.samples.length;
const label = (x: Node) => `${x.callFrame.functionName || '(anonymous)'} ${x.callFrame.url.replace(/^.*\/(node_modules\/|dist\/|node:)/, '$1')}:${x.callFrame.lineNumber + 1}`;

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
const hits = new Map<number, number>();
for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
for (const [id, h] of hits) {
  const x = byId.get(id)!;
  self.set(label(x), (self.get(label(x)) ?? 0) + h);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur)!);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + h);
  }
}
const pct = (v: number) => ((v / total) * 100).toFixed(1).padStart(5) + ' %';
console.log(`${total} samples\n\nself time:`);
for (const [l, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${pct(v)}  ${l}`);
console.log('\ntotal time (dist/ and ws only):');
for (const [l, v] of [...inclusive].filter(([l]) => /dist\/|node_modules\/ws/.test(l)).sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${pct(v)}  ${l}`);

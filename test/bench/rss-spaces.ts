// Where a Switchboard server's RSS goes after a burst of idle connections: the server as `npm start` runs it (its node
// flags, plus --flags), N idle WebSocket clients in a child; RSS (/proc) and V8's spaces (GET /metrics, committed and
// used) before, right after the last connect, and 3, 12 and 30 s later. With --flags=--trace-gc the server's log shows
// which mark-compacts ran and whether V8's memory reducer ("Mark-Compact (reduce)") came before the 12 s sample.
//   npm run build && npx tsx test/bench/rss-spaces.ts [--clients 10000] [--flags=--trace-gc] [--dist dist]
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { startServer } from './servers.js';

const { values: f } = parseArgs({ options: { clients: { type: 'string', default: '10000' }, flags: { type: 'string' }, dist: { type: 'string', default: 'dist' }, path: { type: 'string', default: '/ws/bench' }, port: { type: 'string', default: '18555' } } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const port = Number(f.port);
const n = Number(f.clients);

function status(pid: number) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}
async function spaces() {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/nodejs_heap_space_size_(total|used)_bytes\{space="(\w+)"\} (\d+)/g)) {
    const [, kind, space, v] = m;
    if (!['new', 'old', 'code', 'map', 'large_object'].includes(space!)) continue;
    out[`${space}.${kind}`] = (Number(v) / 2 ** 20).toFixed(1);
  }
  const ext = /nodejs_external_memory_bytes (\d+)/.exec(text);
  out.external = (Number(ext?.[1] ?? 0) / 2 ** 20).toFixed(1);
  return out;
}
const flags = f.flags ? f.flags.split(' ').filter(Boolean) : [];
const server = await startServer('switchboard', { port, nodeFlags: flags, dist: f.dist });
const row = async (label: string) => {
  const st = status(server.pid);
  console.log(label.padEnd(10), `rss ${st.rss.toFixed(1)} anon ${st.anon.toFixed(1)} file ${st.file.toFixed(1)}`, JSON.stringify(await spaces()));
  return st.rss;
};
await sleep(1000);
const r0 = await row('before');
const child = fork(fileURLToPath(new URL('connection-memory.ts', import.meta.url)), ['--child', `ws://127.0.0.1:${port}${f.path}`, '--clients', String(n)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
const t0 = Date.now();
await new Promise((r) => child.once('message', r));
console.log(`connected in ${Date.now() - t0} ms`);
await row('0 s');
await sleep(3000);
const r3 = await row('3 s');
await sleep(9000);
const r12 = await row('12 s');
await sleep(18000);
const r30 = await row('30 s');
console.log(`per connection KB: 3 s ${(((r3 - r0) * 1024) / n).toFixed(2)}, 12 s ${(((r12 - r0) * 1024) / n).toFixed(2)}, 30 s ${(((r30 - r0) * 1024) / n).toFixed(2)}`);
child.kill();
await server.stop();
process.exit(0);

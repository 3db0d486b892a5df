// What one idle WebSocket connection costs the broker, part by part. The broker runs in this process (built, from
// dist/), N idle clients in a child; a V8 heap snapshot is taken before and after they connect, and the growth is
// grouped by constructor (self sizes, divided by N). RSS and heap per connection are printed beside it.
//   npm run build && node --expose-gc --import tsx test/bench/connection-memory.ts [--clients 2000] [--dist dist]
//   … --shapes: plain objects grouped by their property names, arrays and internals by their holder (heap-shapes.ts)
//   Also printed: what V8 keeps resident beside what the heap holds (the connect burst leaves its pages part free).
//   … --bare: the same for the bare `ws` server of the fan-out bench (hello, a set of subscribers, three listeners)
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from 'node:v8';
import { readFileSync, rmSync } from 'node:fs';
import WebSocket, { WebSocketServer } from 'ws';
import type { Config } from '../../src/config.js';
import { openIdleSockets } from './idle-sockets.js';
import { growth } from './heap-shapes.js';
import type * as BrokerModule from '../../src/broker.js';
import type * as LogModule from '../../src/log.js';

const { values: flags } = parseArgs({
  options: { bare: { type: 'boolean', default: false }, clients: { type: 'string', default: '2000' }, dist: { type: 'string', default: 'dist' }, child: { type: 'string' }, top: { type: 'string', default: '40' }, shapes: { type: 'boolean', default: false } },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (flags.child) await clients(flags.child, Number(flags.clients));
else await broker(Number(flags.clients));

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) g();
}

/** Self size and count per node name (constructor or kind) of a heap snapshot. */
function groups(file: string): Map<string, { count: number; bytes: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [iType, iName, iSize] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!]!;
    const name = type === 'object' || type === 'closure' ? `${type} ${snap.strings[snap.nodes[i + iName]!]}` : `(${type})`;
    const g = out.get(name) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += snap.nodes[i + iSize]!;
    out.set(name, g);
  }
  return out;
}

/** The bench's bare `ws` broadcast server (test/bench/servers/ws-broadcast.ts), in this process. */
async function bareWs(): Promise<{ port: number; size: () => number; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  const subscribers = new Set<WebSocket>();
  const alive = new WeakSet<WebSocket>();
  wss.on('connection', (ws) => {
    ws.send('{"op":"hello"}');
    ws.on('error', () => ws.terminate());
    subscribers.add(ws);
    alive.add(ws);
    ws.on('pong', () => alive.add(ws));
    ws.on('close', () => subscribers.delete(ws));
  });
  await new Promise((r) => wss.once('listening', r));
  return { port: (wss.address() as { port: number }).port, size: () => subscribers.size, close: () => new Promise((r) => wss.close(() => r(undefined))) };
}

async function broker(n: number): Promise<void> {
  if (flags.bare) {
    const bare = await bareWs();
    return measure(n, bare.port, bare.size, bare.close);
  }
  const root = new URL(`../../${flags.dist}/`, import.meta.url);
  const { defaults } = (await import(new URL('config.js', root).href)) as { defaults: Config };
  const { startBroker } = (await import(new URL('broker.js', root).href)) as typeof BrokerModule;
  const { createLogger } = (await import(new URL('log.js', root).href)) as typeof LogModule;
  const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', maxConnections: n + 100, maxConnectionsPerIp: n + 100, idleMs: 86_400_000 };
  const b = await startBroker(config, { log: createLogger('silent', false) });
  return measure(n, b.port, () => b.hub.inspect.clientCount(), () => b.close());
}

async function measure(n: number, port: number, size: () => number, close: () => Promise<void>): Promise<void> {
  // A few connections first, so code paths and shared structures exist before the baseline.
  const warm = fork(fileURLToPath(import.meta.url), ['--child', `ws://127.0.0.1:${port}/ws`, '--clients', '50'], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  await new Promise((r) => warm.once('message', r));
  warm.kill();
  while (size() > 0) await sleep(20);
  await sleep(500);
  gc();
  const before = writeHeapSnapshot('/tmp/connection-memory-before.heapsnapshot');
  gc();
  const heap0 = process.memoryUsage();
  const v80 = v8Stats();
  const child = fork(fileURLToPath(import.meta.url), ['--child', `ws://127.0.0.1:${port}/ws`, '--clients', String(n)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  await new Promise((r) => child.once('message', r));
  while (size() < n) await sleep(20);
  await sleep(1000);
  gc();
  const heap1 = process.memoryUsage();
  const v81 = v8Stats();
  const after = writeHeapSnapshot('/tmp/connection-memory-after.heapsnapshot');
  const g0 = groups(before);
  const g1 = groups(after);
  const rows = flags.shapes
    ? growth(before, after, n)
    : [...g1]
        .map(([name, g]) => ({ name, count: (g.count - (g0.get(name)?.count ?? 0)) / n, bytes: (g.bytes - (g0.get(name)?.bytes ?? 0)) / n }))
        .filter((r) => r.bytes > 8)
        .sort((a, b) => b.bytes - a.bytes);
  rmSync(before);
  rmSync(after);
  const total = rows.reduce((s, r) => s + r.bytes, 0);
  console.log(`${n} idle WebSocket connections, per connection:`);
  console.log(`  heapUsed +${((heap1.heapUsed - heap0.heapUsed) / n).toFixed(0)} B, external +${((heap1.external - heap0.external) / n).toFixed(0)} B, arrayBuffers +${((heap1.arrayBuffers - heap0.arrayBuffers) / n).toFixed(0)} B, RSS +${((heap1.rss - heap0.rss) / n).toFixed(0)} B`);
  // RSS beyond the live heap: V8's committed pages (free space left in them after the connect burst), not malloc.
  console.log(`  committed: ${Object.keys(v81).map((k) => `${k} +${((v81[k]! - (v80[k] ?? 0)) / n).toFixed(0)} B`).join(', ')}`);
  console.log(`  heap snapshot growth: ${total.toFixed(0)} B in these groups (self sizes):`);
  for (const r of rows.slice(0, Number(flags.top))) console.log(`  ${r.bytes.toFixed(0).padStart(6)} B  ${r.count.toFixed(2).padStart(6)}×  ${r.name}`);
  child.kill();
  await close();
  process.exit(0);
}

/** V8's resident heap pages (all, and old and new space beside what they hold) and glibc's main arena. */
function v8Stats(): Record<string, number> {
  const out: Record<string, number> = { 'V8 heap resident': getHeapStatistics().total_physical_size };
  for (const s of getHeapSpaceStatistics()) {
    if (s.space_name !== 'old_space' && s.space_name !== 'new_space') continue;
    out[`${s.space_name} resident`] = s.physical_space_size;
    out[`${s.space_name} used`] = s.space_used_size;
  }
  return { ...out, ...arenas() };
}

/** Resident bytes of glibc's main arena ([heap]: native allocations) and of anonymous mappings (V8's pages among them). */
function arenas(): Record<string, number> {
  const text = readFileSync('/proc/self/smaps', 'utf8');
  let heap = 0;
  let anon = 0;
  let name = '';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      name = head[1]!;
      continue;
    }
    const m = /^Rss:\s+(\d+) kB/.exec(line);
    if (!m) continue;
    if (name === '[heap]') heap += Number(m[1]) * 1024;
    else if (name === '') anon += Number(m[1]) * 1024;
  }
  return { 'rss [heap]': heap, 'rss anon maps': anon };
}

async function clients(url: string, n: number): Promise<void> {
  await openIdleSockets(url, n);
  process.send!('ready');
  setInterval(() => undefined, 60_000);
}

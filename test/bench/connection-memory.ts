// What one idle WebSocket connection costs the broker, part by part. The broker runs in this process (built, from
// dist/), N idle clients in a child; a V8 heap snapshot is taken before and after they connect, and the growth is
// grouped by constructor (self sizes, divided by N). RSS and heap per connection are printed beside it.
//   npm run build && node --expose-gc --import tsx test/bench/connection-memory.ts [--clients 2000] [--dist dist]
//   … --shapes: plain objects grouped by their property names, arrays and internals by their holder (heap-shapes.ts)
//   … --bare: the same for the bare `ws` server of the fan-out bench (hello, a set of subscribers, three listeners)
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeHeapSnapshot } from 'node:v8';
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
  const child = fork(fileURLToPath(import.meta.url), ['--child', `ws://127.0.0.1:${port}/ws`, '--clients', String(n)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  await new Promise((r) => child.once('message', r));
  while (size() < n) await sleep(20);
  await sleep(1000);
  gc();
  const heap1 = process.memoryUsage();
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
  console.log(`  heap snapshot growth: ${total.toFixed(0)} B in these groups (self sizes):`);
  for (const r of rows.slice(0, Number(flags.top))) console.log(`  ${r.bytes.toFixed(0).padStart(6)} B  ${r.count.toFixed(2).padStart(6)}×  ${r.name}`);
  child.kill();
  await close();
  process.exit(0);
}

async function clients(url: string, n: number): Promise<void> {
  await openIdleSockets(url, n);
  process.send!('ready');
  setInterval(() => undefined, 60_000);
}

// What the application backend's hooks cost: added latency and broker CPU per connect, subscribe and publish with
// each hook on, against the same broker with hooks off, in one run. The broker and a pass-through backend
// (test/helpers/hook-backend.mjs, answering {} at once) run as their own processes; CPU comes from /proc/<pid>.
//   npx tsx test/bench/hooks.ts [--n 400]      writes test/bench/results/hooks.json
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { cpuUs } from './servers.js';
import { startBackend } from '../helpers/backend-process.js';
import { freePort } from '../helpers/ports.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const { values } = parseArgs({ options: { n: { type: 'string', default: '400' } } });
const N = Number(values.n);

async function startBroker(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--port', String(port), '--tcp-port', '0', '--log-level', 'error', '--rate', '0', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) return { child, port };
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('broker did not start');
}

function open(url: string): Promise<{ ws: WebSocket; next: (pred: (f: any) => boolean) => Promise<any> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const waiters: { pred: (f: any) => boolean; resolve: (f: any) => void }[] = [];
    ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      const i = waiters.findIndex((w) => w.pred(f));
      if (i >= 0) waiters.splice(i, 1)[0]!.resolve(f);
    });
    const next = (pred: (f: any) => boolean) => new Promise<any>((r) => waiters.push({ pred, resolve: r }));
    const hello = next((f) => f.op === 'hello');
    ws.once('error', reject);
    ws.once('open', () => hello.then(() => resolve({ ws, next })));
  });
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** N sequential operations; per-op latency (µs) and broker/backend CPU per op (µs). */
async function measure(op: 'connect' | 'subscribe' | 'publish', brokerPid: number, backendPid: number, port: number) {
  const url = `ws://127.0.0.1:${port}/ws`;
  const c = op === 'connect' ? undefined : await open(url);
  // Warm up (JIT, keep-alive sockets) before counting.
  const once = async (i: number) => {
    if (op === 'connect') {
      const x = await open(url);
      x.ws.terminate();
    } else if (op === 'subscribe') {
      c!.ws.send(JSON.stringify({ op: 'sub', id: i, topic: `t/${i}` }));
      await c!.next((f) => f.id === i);
    } else {
      c!.ws.send(JSON.stringify({ op: 'pub', id: i, topic: 'p', data: i }));
      await c!.next((f) => f.id === i && f.op === 'ack');
    }
  };
  for (let i = 0; i < 50; i++) await once(-1 - i);
  const lat: number[] = [];
  const cpu0 = cpuUs(brokerPid);
  const back0 = cpuUs(backendPid);
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    await once(i);
    lat.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  const brokerCpu = (cpuUs(brokerPid) - cpu0) / N;
  const backendCpu = (cpuUs(backendPid) - back0) / N;
  c?.ws.terminate();
  lat.sort((a, b) => a - b);
  return { p50Us: Math.round(pct(lat, 50)), p99Us: Math.round(pct(lat, 99)), brokerCpuUsPerOp: Math.round(brokerCpu), backendCpuUsPerOp: Math.round(backendCpu) };
}

const backend = await startBackend();
const results: Record<string, unknown> = {};
try {
  for (const op of ['connect', 'subscribe', 'publish'] as const) {
    for (const hooks of ['off', op === 'subscribe' ? 'subscribe' : op]) {
      const args = hooks === 'off' ? [] : ['--hook-url', backend.url, '--hooks', hooks, '--hook-secret', 'bench'];
      const b = await startBroker(args);
      results[`${op}/${hooks === 'off' ? 'off' : 'hook'}`] = await measure(op, b.child.pid!, backend.child.pid!, b.port);
      b.child.kill('SIGKILL');
      console.log(op, hooks, JSON.stringify(results[`${op}/${hooks === 'off' ? 'off' : 'hook'}`]));
    }
  }
} finally {
  await backend.stop();
}
const out = { when: new Date().toISOString(), n: N, note: 'sequential operations of one client; hook backend answers {} at once in its own process; CPU from /proc (10 ms ticks, so per-op figures are averages over N)', results };
writeFileSync(new URL('./results/hooks.json', import.meta.url), JSON.stringify(out, null, 2) + '\n');
console.log(JSON.stringify(out, null, 2));

// Idle cluster node: what a Switchboard node with no clients costs per second (the `nodes` workload's node C pays
// only this). Starts a private redis-server and one `serve --redis` node per build given, lets them settle, then
// counts over the window, per process: CPU (the threads' schedstat run time, ns, not the 10 ms /proc ticks), the
// main thread's wake-ups (voluntary context switches: each is one return from epoll_wait) and all threads' wake-ups.
// The builds run side by side in the same window, so the machine's load moves them alike.
//   npx tsx test/bench/idle-node.ts                                  dist/ only, 20 s
//   npx tsx test/bench/idle-node.ts --dist dist-before,dist --seconds 30 --clients 0,10
// --clients N holds N idle WebSocket connections on each node during a second window (what the armed timers cost).
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync, mkdtempSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { sleep, startServer, type RunningServer } from './servers.js';

const { values: flags } = parseArgs({
  options: {
    dist: { type: 'string', default: 'dist' },
    seconds: { type: 'string', default: '20' },
    settle: { type: 'string', default: '4' },
    clients: { type: 'string', default: '0' },
  },
});
const builds = flags.dist!.split(',');
const seconds = Number(flags.seconds);
const clientCounts = flags.clients!.split(',').map(Number);

interface Sample {
  runNs: number;
  mainWakeups: number;
  allWakeups: number;
}

function readSample(pid: number): Sample {
  let runNs = 0;
  let allWakeups = 0;
  let mainWakeups = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let status: string;
    let sched: string;
    try {
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      sched = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
    } catch {
      continue; // a thread that ended between the listing and the read
    }
    const voluntary = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    runNs += Number(sched.split(' ')[0]);
    allWakeups += voluntary;
    if (tid === String(pid)) mainWakeups = voluntary;
  }
  return { runNs, mainWakeups, allWakeups };
}

async function openClients(port: number, n: number): Promise<WebSocket[]> {
  const sockets = await Promise.all(
    Array.from({ length: n }, () => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      ws.once('message', () => resolve(ws)); // the welcome frame: the connection is online
      ws.once('error', reject);
    })),
  );
  return sockets;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-idle-redis-'));
  const redisPort = 16_390 + Math.floor(Math.random() * 500);
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const nodes: RunningServer[] = [];
  try {
    await sleep(300);
    execFileSync('redis-cli', ['-p', String(redisPort), 'ping']);
    let port = 18_700 + Math.floor(Math.random() * 200);
    for (const dist of builds) nodes.push(await startServer('switchboard', { port: port++, dist, redisUrl: `redis://127.0.0.1:${redisPort}` }));
    await sleep(Number(flags.settle) * 1000);
    console.log(`idle node, ${seconds} s windows, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log('| build | clients | CPU ms/s | main-thread wake-ups/s | all threads wake-ups/s |');
    console.log('|---|---:|---:|---:|---:|');
    for (const clients of clientCounts) {
      const held = (await Promise.all(nodes.map((n) => openClients(n.port, clients)))).flat();
      if (clients > 0) await sleep(2000);
      const before = nodes.map((n) => readSample(n.pid));
      await sleep(seconds * 1000);
      const after = nodes.map((n) => readSample(n.pid));
      nodes.forEach((_, i) => {
        const a = before[i]!;
        const b = after[i]!;
        const per = (x: number) => (x / seconds).toFixed(1);
        console.log(`| ${builds[i]} | ${clients} | ${((b.runNs - a.runNs) / 1e6 / seconds).toFixed(2)} | ${per(b.mainWakeups - a.mainWakeups)} | ${per(b.allWakeups - a.allWakeups)} |`);
      });
      for (const ws of held) ws.terminate();
    }
    console.log(`load after ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    redis.kill('SIGTERM');
  }
}

await main();

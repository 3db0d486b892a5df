// Scale: `serve --workers 6 --redis …` holding up to 100,000 WebSocket connections on one machine, more than one
// process's open-file limit allows. Load generators (forked children, each under its own ~20,000-file limit) open
// raw WebSocket subscribers of /ws/bench over 127.0.0.1–.10; the broker pings every 10 s and they answer. Once
// opened, the connections are held through two heartbeat rounds, then one broadcast is published and timed until
// every subscriber has it. Reports broker RSS (sum over the workers) per connection. Heavy: run it alone, once.
//   npm run bench:scale -- [--clients 100000] [--workers 6] [--generators 6] [--redis redis://127.0.0.1:6379] [--dist dist | --source]
// The broker runs as users start it (`npm start`: node with the start script's flags, from the build, `--dist`); its
// workers inherit those flags. `--source` runs src/cli.ts through tsx instead (as this bench did before 3 December:
// each worker then also holds tsx's loader, and V8's young generation is not capped).
// Without --redis it starts a private redis-server. Stops opening at the first sign of trouble (failures, no
// progress, low memory, time) and measures what it reached.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BenchClient, nowUs } from './wire.js';
import { TestRedis } from '../cluster/redis.js';
import { startScriptFlags } from './servers.js';

const { values: flags } = parseArgs({
  options: {
    clients: { type: 'string', default: '100000' },
    workers: { type: 'string', default: '6' },
    generators: { type: 'string', default: '6' },
    redis: { type: 'string' },
    dist: { type: 'string', default: 'dist' },
    source: { type: 'boolean', default: false },
    child: { type: 'string' },
  },
});
const HEARTBEAT_MS = 10_000;
const SOURCES = Array.from({ length: 10 }, (_, i) => `127.0.0.${i + 1}`);
const OPEN_DEADLINE_MS = Number(process.env.SCALE_OPEN_SECONDS ?? 480) * 1000;
const STALL_MS = 20_000;
const MIN_FREE_MEMORY_KB = 3_000_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Progress = { type: 'progress'; n: number; open: number; failed: number; closed: number; deliveries: number; lastUs: number; lastError: string; done: boolean };
type ToChild = { type: 'open'; port: number; count: number; offset: number } | { type: 'stop' } | { type: 'report'; n: number } | { type: 'close' };

if (flags.child) generator();
else await main();

/** A load generator: opens its share with bounded concurrency, answers pings, reports progress on request. */
function generator(): void {
  const clients: BenchClient[] = [];
  let open = 0;
  let failed = 0;
  let closed = 0;
  let deliveries = 0;
  let lastUs = 0;
  let lastError = '';
  let stopped = false;
  let launched = 0;
  let target = 0;
  const report = (n: number) => process.send!({ type: 'progress', n, open, failed, closed, deliveries, lastUs, lastError, done: stopped || open + failed + closed >= target } satisfies Progress);
  const launch = (port: number, offset: number): void => {
    if (stopped || launched >= target) return;
    const i = launched++;
    let settled = false;
    const c = new BenchClient(
      { proto: 'sb', host: '127.0.0.1', port },
      {
        role: 'sub',
        localAddress: SOURCES[(i + offset) % SOURCES.length],
        onReady: () => {
          settled = true;
          open++;
          launch(port, offset);
        },
        onDeliveries: (n) => {
          deliveries += n;
          lastUs = nowUs();
        },
        onClose: (err) => {
          if (err) lastError = err.message;
          if (settled) {
            open--;
            closed++;
            return;
          }
          settled = true;
          failed++;
          launch(port, offset);
        },
      },
    );
    clients.push(c);
  };
  process.on('message', (m: ToChild) => {
    if (m.type === 'open') {
      target = m.count;
      for (let k = 0; k < 100; k++) launch(m.port, m.offset);
    } else if (m.type === 'stop') stopped = true;
    else if (m.type === 'report') report(m.n);
    else if (m.type === 'close') {
      for (const c of clients) c.socket.destroy();
      setTimeout(() => process.exit(0), 100);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

async function main(): Promise<void> {
  const want = Number(flags.clients);
  const workers = Number(flags.workers);
  const gens = Number(flags.generators);
  const own = flags.redis ? undefined : await TestRedis.start();
  const redisUrl = flags.redis ?? own!.url;
  console.log(`ulimit -n here: ${readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)/)?.[1]}; redis ${redisUrl}`);

  // Each worker applies the limits on its own; a worker's share must fit its open-file limit (~20,000).
  const perWorker = Math.min(19_000, Math.ceil((want * 1.2) / workers));
  const serve = spawn(
    process.execPath,
    [...(flags.source ? ['--import', 'tsx', 'src/cli.ts'] : [...startScriptFlags(), `${flags.dist}/cli.js`]), 'serve', '--workers', String(workers), '--redis', redisUrl, '--port', '0', '--tcp-port', '0', '--heartbeat-ms', String(HEARTBEAT_MS), '--idle-ms', '600000', '--max-connections', String(perWorker), '--max-connections-per-ip', String(perWorker), '--log-level', 'info'],
    { cwd: new URL('../..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let ready: { port: number; pids: number[] } | undefined;
  const trouble: string[] = [];
  createInterface({ input: serve.stdout! }).on('line', (line) => {
    if (line.includes('"msg":"connect"') || line.includes('"msg":"close"')) return; // per-connection lines: not read
    let entry: Record<string, any>;
    try {
      entry = JSON.parse(line);
    } catch {
      return;
    }
    if (entry.msg === 'workers ready') ready = { port: entry.port, pids: entry.pids };
    else if (entry.level >= 40) {
      trouble.push(entry.msg);
      if (trouble.length <= 20) console.log(`broker ${entry.level === 40 ? 'warn' : 'error'}: ${entry.msg}`);
    }
  });
  const serveExit = new Promise<number | null>((r) => serve.once('exit', r));
  for (let t = 0; !ready && t < 600; t++) await sleep(100);
  if (!ready) throw new Error('workers not ready within 60 s');
  const { port } = ready;
  const rssBefore = brokerRss(serve.pid!);
  console.log(`${workers} workers ready on port ${port} (pids ${ready.pids.join(', ')}); RSS ${mb(rssBefore.workers)} MB workers + ${mb(rssBefore.primary)} MB primary`);

  const children: ChildProcess[] = [];
  const latest = new Map<ChildProcess, Progress>();
  for (let g = 0; g < gens; g++) {
    const child = fork(fileURLToPath(import.meta.url), ['--child', String(g)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
    child.on('message', (m: Progress) => latest.set(child, m));
    children.push(child);
  }
  // Every generator's answer to this poll, or (when a busy generator is slow to answer) its last one: a poll that
  // left a generator out would under-count and look like a stall.
  let pollNo = 0;
  const fresh = () => [...latest.values()].filter((p) => p.n === pollNo).length;
  const poll = async (): Promise<Progress[]> => {
    pollNo++;
    for (const c of children) c.send({ type: 'report', n: pollNo } satisfies ToChild);
    for (let t = 0; t < 500 && fresh() < children.length; t++) await sleep(20);
    return [...latest.values()];
  };
  const sum = (ps: Progress[], k: 'open' | 'failed' | 'closed' | 'deliveries') => ps.reduce((a, p) => a + p[k], 0);

  // Open: each generator its share, 100 handshakes in flight each; stop at the first sign of trouble.
  const share = Math.ceil(want / gens);
  const t0 = Date.now();
  children.forEach((c, g) => c.send({ type: 'open', port, count: Math.min(share, want - g * share), offset: g } satisfies ToChild));
  let best = 0;
  let bestAt = Date.now();
  let stopReason = 'target reached';
  for (;;) {
    await sleep(2000);
    const ps = await poll();
    const open = sum(ps, 'open');
    const failed = sum(ps, 'failed');
    const free = memAvailableKb();
    const rss = brokerRss(serve.pid!);
    console.log(`${((Date.now() - t0) / 1000).toFixed(0)} s: ${open} open, ${failed} failed, ${sum(ps, 'closed')} closed; workers ${mb(rss.workers)} MB, primary ${mb(rss.primary)} MB; free ${mb(free * 1024)} MB${ps.find((p) => p.lastError)?.lastError ? `; last error: ${ps.find((p) => p.lastError)!.lastError}` : ''}`);
    if (open > best) [best, bestAt] = [open, Date.now()];
    if (ps.length === children.length && ps.every((p) => p.done)) break;
    const why =
      failed > Math.max(200, want * 0.01) ? `${failed} connections failed` :
      sum(ps, 'closed') > 100 ? 'open connections are being closed' :
      free < MIN_FREE_MEMORY_KB ? 'memory is running low' :
      Date.now() - bestAt > STALL_MS ? `no progress for ${STALL_MS / 1000} s` :
      Date.now() - t0 > OPEN_DEADLINE_MS ? `${OPEN_DEADLINE_MS / 1000} s passed` :
      serve.exitCode !== null ? 'the broker exited' : undefined;
    if (why) {
      stopReason = why;
      for (const c of children) c.send({ type: 'stop' } satisfies ToChild);
      console.log(`stopped opening: ${why}`);
      break;
    }
  }
  const openMs = Date.now() - t0;
  const opened = sum(await poll(), 'open');
  console.log(`${opened} connections open after ${(openMs / 1000).toFixed(1)} s (${stopReason})`);

  // Hold through two heartbeat rounds: every ping must be answered, nothing closed.
  await sleep(2 * HEARTBEAT_MS + 5000);
  const held = await poll();
  const heldOpen = sum(held, 'open');
  console.log(`held ${heldOpen} through two heartbeat rounds (${sum(held, 'closed')} closed)`);
  const rss = brokerRss(serve.pid!);

  // One broadcast to every subscriber of `bench`, timed until the last generator counted its delivery.
  const before = sum(held, 'deliveries');
  const sentUs = nowUs();
  const res = await fetch(`http://127.0.0.1:${port}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'bench', data: 'all hands' }) });
  const ack = await res.json();
  const ackMs = (nowUs() - sentUs) / 1000;
  let got = 0;
  let ps: Progress[] = [];
  for (const until = Date.now() + 30_000; Date.now() < until; ) {
    ps = await poll();
    got = sum(ps, 'deliveries') - before;
    if (got >= heldOpen) break;
    await sleep(50);
  }
  const broadcastMs = (Math.max(...ps.map((p) => p.lastUs)) - sentUs) / 1000;
  console.log(`broadcast: ${got}/${heldOpen} delivered, the last ${broadcastMs.toFixed(0)} ms after the publish (ack ${ackMs.toFixed(0)} ms: ${JSON.stringify(ack)})`);
  const perConn = (rss.workers - rssBefore.workers) / Math.max(1, heldOpen);
  console.log(`broker RSS: ${mb(rss.workers)} MB over ${rss.pids} workers (+${mb(rss.primary)} MB primary) = ${(rss.workers / Math.max(1, heldOpen) / 1024).toFixed(1)} KB per connection; ${(perConn / 1024).toFixed(1)} KB per connection above the idle workers`);

  const result = {
    date: new Date().toISOString(),
    broker: flags.source ? 'src/cli.ts through tsx' : `node ${[...startScriptFlags(), `${flags.dist}/cli.js`].join(' ')}`,
    workers,
    generators: gens,
    wanted: want,
    opened,
    openSeconds: +(openMs / 1000).toFixed(1),
    stopReason,
    held: heldOpen,
    closedDuringHold: sum(held, 'closed'),
    broadcast: { delivered: got, lastMs: +broadcastMs.toFixed(1), ackMs: +ackMs.toFixed(1) },
    rssWorkersMB: +mb(rss.workers),
    rssPrimaryMB: +mb(rss.primary),
    rssPerConnectionKB: +(rss.workers / Math.max(1, heldOpen) / 1024).toFixed(1),
    rssPerConnectionAboveIdleKB: +(perConn / 1024).toFixed(1),
    brokerWarnings: trouble.length,
  };
  writeFileSync(new URL('./results/scale-workers.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');

  for (const c of children) c.send({ type: 'close' } satisfies ToChild);
  await sleep(1000);
  serve.kill('SIGTERM');
  const code = await Promise.race([serveExit, sleep(30_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    for (const pid of [...childPids(serve.pid!), serve.pid!]) process.kill(pid, 'SIGKILL');
  }
  console.log(`broker stopped: ${code}`);
  await own?.stop();
  process.exit(0);
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(0);
}

function memAvailableKb(): number {
  return Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
}

function childPids(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) out.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

function rssOf(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** RSS of the primary and the sum over its workers (its child processes). */
function brokerRss(primary: number): { primary: number; workers: number; pids: number } {
  // Only the workers (children running the broker), not tsx's esbuild service.
  const pids = childPids(primary).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('serve');
    } catch {
      return false;
    }
  });
  return { primary: rssOf(primary), workers: pids.reduce((a, p) => a + rssOf(p), 0), pids: pids.length };
}

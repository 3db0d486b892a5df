// Cluster benchmark: Switchboard on one Redis (one node, two nodes) beside its in-memory node and beside Socket.IO 4
// with @socket.io/redis-adapter on two nodes, side by side in one run. Every broker node is a process of its own;
// the Redis is the machine's (127.0.0.1:6379, FLUSHALL before each configuration). Server CPU is utime+stime from
// /proc/<pid>/stat of the broker processes (summed) and, separately, of redis-server, over the measured window.
//   npm run bench:cluster                                   writes test/bench/results/cluster.json
//   npm run bench:cluster -- --configs sb-memory,sb-redis-2 --workloads fanout --subs 1000 --seconds 5
//   npm run bench:cluster -- --profile /tmp/prof             Switchboard nodes write .cpuprofile files there
//   npm run bench:cluster -- --workloads nodes --perf /tmp/p  `perf record -g` of redis-server over each measured window
//   npx tsx test/bench/cluster.ts --workloads nodes --configs sb-redis-3 --dist dist-before   another build of Switchboard (A/B)
//   npm run bench:cluster -- --workloads nodes --configs sb-redis-3,sb-redis-3-unix   TCP against a Unix socket, on a Redis of the bench's own (port 6389)
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuUs, sleep, startScriptFlags, startServer, type RunningServer } from './servers.js';
import type { Proto, Target } from './wire.js';
import { Worker } from './worker.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOURCES = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];
type ConfigName = 'sb-memory' | 'sb-redis' | 'sb-redis-2' | 'sio-redis-2' | 'sb-redis-3' | 'sio-redis-3' | 'sb-redis-3-unix';
const ALL_CONFIGS: ConfigName[] = ['sb-memory', 'sb-redis', 'sb-redis-2', 'sio-redis-2'];
/** The `nodes` workload's layout: three nodes (publisher on A, subscribers on B, nobody on C). */
const NODE_CONFIGS: ConfigName[] = ['sb-redis-3', 'sio-redis-3'];
/** Also of the `nodes` workload, only when named: its Switchboard nodes reach Redis on a Unix socket. */
const NODE_EXTRA: ConfigName[] = ['sb-redis-3-unix'];
const CONFIG_LABEL: Record<ConfigName, string> = {
  'sb-memory': 'Switchboard, 1 node, memory engine',
  'sb-redis': 'Switchboard, 1 node, Redis engine',
  'sb-redis-2': 'Switchboard, 2 nodes, one Redis',
  'sio-redis-2': 'Socket.IO 4 + redis-adapter, 2 nodes',
  'sb-redis-3': 'Switchboard, 3 nodes, one Redis',
  'sio-redis-3': 'Socket.IO 4 + @socket.io/redis-adapter, 3 nodes',
  'sb-redis-3-unix': 'Switchboard, 3 nodes, one Redis on a Unix socket',
};
type Workload = 'fanout' | 'ingest' | 'nodes';

const { values: flags } = parseArgs({
  options: {
    configs: { type: 'string' },
    workloads: { type: 'string' },
    seconds: { type: 'string' },
    subs: { type: 'string' },
    rate: { type: 'string' },
    publishers: { type: 'string' },
    'ingest-rate': { type: 'string' },
    'nodes-rate': { type: 'string' },
    'nodes-subs': { type: 'string' },
    'settle-seconds': { type: 'string' },
    profile: { type: 'string' },
    perf: { type: 'string' },
    out: { type: 'string' },
    dist: { type: 'string' },
  },
});
const sizes = {
  seconds: Number(flags.seconds ?? 10),
  warmupSeconds: 2,
  payload: 64,
  /** Fan-out: subscribers in all (two of them measure latency), messages per second from one publisher. */
  subs: Number(flags.subs ?? 500),
  rate: Number(flags.rate ?? 100),
  /** Ingest: publishers, each at `ingestRate` msg/s to its own topic. */
  publishers: Number(flags.publishers ?? 200),
  ingestRate: Number(flags['ingest-rate'] ?? 20),
  /** Nodes: one publisher on node A at this rate, `nodesSubs` subscribers on node B, nobody on node C. */
  nodesRate: Number(flags['nodes-rate'] ?? 2000),
  nodesSubs: Number(flags['nodes-subs'] ?? 100),
  /**
   * Nodes: the measured window starts at least this long after the last node started. A node's start-up garbage is
   * collected once, 8–10 s after it starts (V8's memory reducer, in the main thread and in the heartbeat thread:
   * ~70 ms of CPU); inside a 10 s window that one-time cost read as ~3.5 µs per message on node C, whose steady
   * cost is its idle ticks (~1.3 ms a second). The same wait for every configuration, Socket.IO's too.
   */
  settleSeconds: Number(flags['settle-seconds'] ?? 12),
};
const configs = (flags.configs?.split(',') as ConfigName[] | undefined) ?? ALL_CONFIGS;
// A configuration on a Unix socket needs a Redis that listens on one, which the machine's (6379) does not: then the
// bench starts a Redis of its own (the machine's settings, port 6389 and a socket) for every configuration of the
// run, so that TCP and the socket are measured on the same server.
const OWN_REDIS = configs.some((c) => c.endsWith('-unix'));
const REDIS_PORT = OWN_REDIS ? 6389 : 6379;
const REDIS_URL = `redis://127.0.0.1:${REDIS_PORT}`;
const REDIS_SOCKET = `/tmp/sb-bench-redis-${process.pid}.sock`;
const workloads = (flags.workloads?.split(',') as Workload[] | undefined) ?? ['fanout', 'ingest', 'nodes'];
const sbNodeFlags = flags.profile ? ['--cpu-prof', `--cpu-prof-dir=${flags.profile}`] : [];
let nextPort = 18_300;

// ---------------------------------------------------------------- Redis (the machine's, at 6379, or the bench's own)
let ownRedis: ChildProcess | undefined;

function redisCli(...args: string[]): string {
  return execFileSync('redis-cli', ['-p', String(REDIS_PORT), ...args]).toString().trim();
}

async function ensureRedis(): Promise<number> {
  const up = (): boolean => spawnSync('redis-cli', ['-p', String(REDIS_PORT), 'ping']).stdout?.toString().trim() === 'PONG';
  if (OWN_REDIS) {
    if (up()) throw new Error(`port ${REDIS_PORT} is taken: the bench's own Redis needs it`);
    process.once('exit', () => ownRedis?.kill('SIGKILL'));
    ownRedis = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(REDIS_PORT), '--unixsocket', REDIS_SOCKET, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', tmpdir(), '--logfile', ''], { stdio: 'ignore' });
    for (let i = 0; i < 50 && !up(); i++) await sleep(100);
  } else if (!up()) {
    // The machine's start command (this machine's setup); nothing is persisted.
    execFileSync('redis-server', ['--daemonize', 'yes', '--bind', '127.0.0.1', '-::1', '--port', String(REDIS_PORT), '--save', '', '--appendonly', 'no', '--dir', '/var/lib/redis', '--logfile', '/var/log/redis/ci.log']);
    for (let i = 0; i < 50 && !up(); i++) await sleep(100);
  }
  const pid = Number(/process_id:(\d+)/.exec(redisCli('info', 'server'))?.[1]);
  if (!pid) throw new Error(`no redis-server answering on ${REDIS_PORT}`);
  return pid;
}

/** Per-command Redis CPU (`INFO commandstats`: calls, usec) since the last CONFIG RESETSTAT. */
function commandStats(): Record<string, { calls: number; usec: number }> {
  const out: Record<string, { calls: number; usec: number }> = {};
  for (const line of redisCli('info', 'commandstats').split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (m) out[m[1]!] = { calls: Number(m[2]), usec: Number(m[3]) };
  }
  return out;
}

/** Redis's counters (`INFO stats` / `clients`) that say what its I/O was: reads, writes, bytes, commands, clients. */
function redisStats(): Record<string, number> {
  const out: Record<string, number> = {};
  const keep = /^(total_commands_processed|total_reads_processed|total_writes_processed|total_net_input_bytes|total_net_output_bytes|connected_clients|pubsub_channels|pubsub_patterns|expired_keys):(\d+)/;
  for (const line of redisCli('info', 'all').split('\n')) {
    const m = keep.exec(line.trim());
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** What Redis did in a window: commandstats and the I/O counters, as differences (clients: at the end). */
function redisWindow(c0: ReturnType<typeof commandStats>, s0: Record<string, number>, c1: ReturnType<typeof commandStats>, s1: Record<string, number>) {
  const commands: Record<string, { calls: number; usec: number }> = {};
  for (const [k, v] of Object.entries(c1)) {
    const calls = v.calls - (c0[k]?.calls ?? 0);
    if (calls > 0) commands[k] = { calls, usec: v.usec - (c0[k]?.usec ?? 0) };
  }
  const io: Record<string, number> = {};
  for (const [k, v] of Object.entries(s1)) io[k] = /^(connected_clients|pubsub_)/.test(k) ? v : v - (s0[k] ?? 0);
  return { commands, io };
}

// ---------------------------------------------------------------- brokers
interface Cluster {
  config: ConfigName;
  proto: Proto;
  nodes: RunningServer[];
  targets: Target[];
  usesRedis: boolean;
  /** When the last node was up (performance.now()). */
  startedAt: number;
}

async function startCluster(config: ConfigName): Promise<Cluster> {
  const usesRedis = config !== 'sb-memory';
  if (usesRedis) {
    redisCli('flushall');
    redisCli('config', 'resetstat');
  }
  const count = /-3(-unix)?$/.test(config) ? 3 : config === 'sb-redis-2' || config === 'sio-redis-2' ? 2 : 1;
  const name = config.startsWith('sio') ? 'socket.io' : 'switchboard';
  const nodes: RunningServer[] = [];
  try {
    for (let i = 0; i < count; i++) {
      nodes.push(await startServer(name, { port: nextPort++, redisUrl: !usesRedis ? undefined : config.endsWith('-unix') ? `unix://${REDIS_SOCKET}` : REDIS_URL, nodeFlags: name === 'switchboard' ? sbNodeFlags : [], dist: flags.dist }));
    }
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw err;
  }
  const startedAt = performance.now();
  await sleep(1000); // nodes registered, Redis subscriptions up
  const proto: Proto = name === 'socket.io' ? 'sio' : 'sb';
  return { config, proto, nodes, usesRedis, startedAt, targets: nodes.map((n) => ({ proto, host: '127.0.0.1', port: n.port })) };
}

async function withCluster<T>(config: ConfigName, fn: (c: Cluster) => Promise<T>): Promise<T> {
  const cluster = await startCluster(config);
  try {
    return await fn(cluster);
  } finally {
    await Promise.all(cluster.nodes.map((n) => n.stop()));
  }
}

/**
 * A process's system calls (read and write kinds, /proc/<pid>/io: every thread) and its main thread's context
 * switches (/proc/<pid>/status: each voluntary one is a wait for I/O, a wake-up after it). Counts, not times: a
 * loaded machine does not move them much, so they show what a change saves when the CPU figures are noisy.
 */
function sysCounts(pid: number): { syscalls: number; switches: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const num = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return { syscalls: num(io, /syscr:\s+(\d+)/) + num(io, /syscw:\s+(\d+)/), switches: num(status, /^voluntary_ctxt_switches:\s+(\d+)/m) };
}

const brokerCpu = (c: Cluster): number => c.nodes.reduce((a, n) => a + cpuUs(n.pid), 0);

// ---------------------------------------------------------------- workers (forked load generator processes)

interface Counts {
  deliveries: number;
  closed: number;
  lastError: string;
  latency: number[];
}

/** One subscriber worker: `count` connections to one node; with `latency`, a single connection decoding stamps. */
async function subscriberWorker(workers: Worker[], target: Target, count: number, latency: boolean, offset: number, path?: string): Promise<Worker> {
  const w = new Worker('subscribers.ts');
  workers.push(w);
  const r = await w.ask({ type: 'open', target, count, latency, concurrency: 100, sources: SOURCES, offset, path }, 'ready', 120_000);
  if (r.failed > 0) throw new Error(`${r.failed} of ${count} subscribers to :${target.port} failed: ${r.lastError}`);
  return w;
}

const counts = (w: Worker, resetLatency = false): Promise<Counts> => w.ask({ type: 'count', resetLatency }, 'count');
async function total(ws: Worker[], resetLatency = false): Promise<number> {
  const all = await Promise.all(ws.map((w) => counts(w, resetLatency)));
  return all.reduce((a, c) => a + c.deliveries, 0);
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const round = (x: number, d = 2): number => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);
const ms = (us: number): number => round(us / 1000, 3);

/** Waits until `expected` deliveries arrived past `base`, or deliveries stopped coming (bounded: 10 s). */
async function drain(ws: Worker[], base: number, expected: number): Promise<number> {
  let last = await total(ws);
  for (let i = 0; i < 50 && last - base < expected; i++) {
    await sleep(200);
    const now = await total(ws);
    if (now === last && i > 5) break;
    last = now;
  }
  return last - base;
}

// ---------------------------------------------------------------- fan-out
async function fanout(config: ConfigName, redisPid: number) {
  return withCluster(config, async (cluster) => {
    const { targets } = cluster;
    const a = targets[0]!;
    const b = targets[targets.length - 1]!; // the other node (the same one when there is one node)
    const workers: Worker[] = [];
    const publisher = new Worker('publisher.ts');
    try {
      // Bulk subscribers: two workers, one per node when there are two (an even split); then the two latency
      // subscribers, each in a process of its own, subscribed last: one on the publisher's node, one on the other.
      const bulk = sizes.subs - 2;
      const half = Math.ceil(bulk / 2);
      await subscriberWorker(workers, a, half, false, 0);
      await subscriberWorker(workers, b, bulk - half, false, 1);
      const latA = await subscriberWorker(workers, a, 1, true, 2);
      const latB = await subscriberWorker(workers, b, 1, true, 3);
      await publisher.ask({ type: 'start', target: a }, 'connected', 15_000);
      await sleep(500);
      const base = await total(workers);
      const { warmupSeconds, seconds, payload, rate } = sizes;
      const done = publisher.ask<{ sent: number; skipped: number }>({ type: 'go', rate, seconds: warmupSeconds + seconds, size: payload }, 'done', (warmupSeconds + seconds + 30) * 1000);
      await sleep(warmupSeconds * 1000);
      const d0 = await total(workers, true);
      const cpu0 = brokerCpu(cluster);
      const r0 = cpuUs(redisPid);
      const t0 = performance.now();
      await sleep(seconds * 1000);
      const [la, lb] = await Promise.all([counts(latA, true), counts(latB, true)]);
      const d1 = await total(workers, true);
      const cpu1 = brokerCpu(cluster);
      const r1 = cpuUs(redisPid);
      const elapsedS = (performance.now() - t0) / 1000;
      const { sent, skipped } = await done;
      const expected = sent * sizes.subs;
      const received = await drain(workers, base, expected);
      const window = d1 - d0;
      const lat = [...la.latency, ...lb.latency];
      return {
        subscribers: sizes.subs,
        rate,
        nodes: cluster.nodes.length,
        sent,
        skipped,
        expected,
        received,
        delivered: round(received / expected, 6),
        deliveriesPerS: Math.round(window / elapsedS),
        brokerCpuUsPerDelivery: round((cpu1 - cpu0) / window, 3),
        brokerCpuPercent: round(((cpu1 - cpu0) / (elapsedS * 1e6)) * 100, 1),
        redisCpuUsPerDelivery: cluster.usesRedis ? round((r1 - r0) / window, 3) : null,
        redisCpuPercent: cluster.usesRedis ? round(((r1 - r0) / (elapsedS * 1e6)) * 100, 1) : null,
        p50Ms: ms(percentile(lat, 50)),
        p99Ms: ms(percentile(lat, 99)),
        publisherNode: { p50Ms: ms(percentile(la.latency, 50)), p99Ms: ms(percentile(la.latency, 99)), samples: la.latency.length },
        otherNode: { p50Ms: ms(percentile(lb.latency, 50)), p99Ms: ms(percentile(lb.latency, 99)), samples: lb.latency.length },
        closed: (await Promise.all(workers.map((w) => counts(w)))).reduce((s, c) => s + c.closed, 0),
        redisCommands: cluster.usesRedis ? commandStats() : undefined,
      };
    } finally {
      publisher.close();
      for (const w of workers) w.close();
      await sleep(500);
    }
  });
}

// ---------------------------------------------------------------- ingest through Redis
async function ingest(config: ConfigName, redisPid: number) {
  return withCluster(config, async (cluster) => {
    const { targets, proto } = cluster;
    const workers: Worker[] = [];
    const pubs = [new Worker('ingest-publishers.ts'), new Worker('ingest-publishers.ts')];
    try {
      const path = proto === 'sio' ? '/socket.io/?EIO=4&transport=websocket&role=in' : '/ws?topics=in/%23';
      const sub = await subscriberWorker(workers, targets[0]!, 1, true, 0, path);
      // Publishers spread over the nodes (publisher i on node i mod n), in two worker processes.
      const half = Math.ceil(sizes.publishers / 2);
      await Promise.all(
        pubs.map((p, k) =>
          p.ask({ type: 'start', targets, first: k === 0 ? 0 : half, count: k === 0 ? half : sizes.publishers - half, sources: SOURCES }, 'connected', 60_000),
        ),
      );
      await sleep(500);
      const base = await total(workers);
      const { warmupSeconds, seconds, payload, ingestRate } = sizes;
      const done = Promise.all(
        pubs.map((p) => p.ask<{ sent: number; skipped: number; closed: number }>({ type: 'go', rate: ingestRate, seconds: warmupSeconds + seconds, size: payload }, 'done', (warmupSeconds + seconds + 30) * 1000)),
      );
      await sleep(warmupSeconds * 1000);
      const d0 = await total(workers, true);
      const cpu0 = brokerCpu(cluster);
      const r0 = cpuUs(redisPid);
      const t0 = performance.now();
      await sleep(seconds * 1000);
      const c1 = await counts(sub, true);
      const cpu1 = brokerCpu(cluster);
      const r1 = cpuUs(redisPid);
      const elapsedS = (performance.now() - t0) / 1000;
      const results = await done;
      const sent = results.reduce((a, r) => a + r.sent, 0);
      const received = await drain(workers, base, sent);
      const window = c1.deliveries - d0;
      return {
        publishers: sizes.publishers,
        ratePerPublisher: ingestRate,
        offeredPerS: sizes.publishers * ingestRate,
        nodes: cluster.nodes.length,
        sent,
        skipped: results.reduce((a, r) => a + r.skipped, 0),
        publishersClosed: results.reduce((a, r) => a + r.closed, 0),
        received,
        deliveredPerS: Math.round(window / elapsedS),
        loss: round(Math.max(0, 1 - received / sent), 6),
        brokerCpuUsPerPublish: round((cpu1 - cpu0) / window, 2),
        brokerCpuPercent: round(((cpu1 - cpu0) / (elapsedS * 1e6)) * 100, 1),
        redisCpuUsPerPublish: cluster.usesRedis ? round((r1 - r0) / window, 2) : null,
        redisCpuPercent: cluster.usesRedis ? round(((r1 - r0) / (elapsedS * 1e6)) * 100, 1) : null,
        p50Ms: ms(percentile(c1.latency, 50)),
        p99Ms: ms(percentile(c1.latency, 99)),
        redisCommands: cluster.usesRedis ? commandStats() : undefined,
      };
    } finally {
      for (const p of pubs) p.close();
      for (const w of workers) w.close();
      await sleep(500);
    }
  });
}

// ---------------------------------------------------------------- nodes: what each node pays per message
/**
 * The issue-20 layout: a publisher on node A at `nodesRate` msg/s, `nodesSubs` subscribers on node B, nobody on
 * node C. CPU per published message of each node and of Redis: with interest routing node C pays ~nothing.
 */
async function nodes(config: ConfigName, redisPid: number) {
  return withCluster(config, async (cluster) => {
    const [a, b] = cluster.targets as [Target, Target, Target];
    const workers: Worker[] = [];
    const publisher = new Worker('publisher.ts');
    try {
      await subscriberWorker(workers, b, sizes.nodesSubs - 1, false, 0);
      const lat = await subscriberWorker(workers, b, 1, true, 1);
      await publisher.ask({ type: 'start', target: a }, 'connected', 15_000);
      await sleep(500);
      const { warmupSeconds, seconds, payload, nodesRate, settleSeconds } = sizes;
      // The window starts settleSeconds after the nodes started (their one-time start-up collections before it).
      await sleep(Math.max(0, cluster.startedAt + (settleSeconds - warmupSeconds) * 1000 - performance.now()));
      const base = await total(workers);
      const done = publisher.ask<{ sent: number; skipped: number }>({ type: 'go', rate: nodesRate, seconds: warmupSeconds + seconds, size: payload }, 'done', (warmupSeconds + seconds + 30) * 1000);
      await sleep(warmupSeconds * 1000);
      await counts(lat, true);
      const d0 = await total(workers);
      const rc0 = cluster.usesRedis ? commandStats() : {};
      const rs0 = cluster.usesRedis ? redisStats() : {};
      const perf = flags.perf && cluster.usesRedis
        ? spawn('perf', ['record', '-g', '-o', `${flags.perf}/redis-${config}-${Date.now()}.data`, '-p', String(redisPid), '--', 'sleep', String(seconds)], { stdio: 'ignore' })
        : undefined;
      const cpu0 = cluster.nodes.map((n) => cpuUs(n.pid));
      const sys0 = [...cluster.nodes.map((n) => sysCounts(n.pid)), sysCounts(redisPid)];
      const r0 = cpuUs(redisPid);
      const t0 = performance.now();
      await sleep(seconds * 1000);
      const l1 = await counts(lat, true);
      const d1 = await total(workers);
      const cpu1 = cluster.nodes.map((n) => cpuUs(n.pid));
      const sys1 = [...cluster.nodes.map((n) => sysCounts(n.pid)), sysCounts(redisPid)];
      const r1 = cpuUs(redisPid);
      const window = cluster.usesRedis ? redisWindow(rc0, rs0, commandStats(), redisStats()) : undefined;
      if (perf) await new Promise((r) => perf.once('exit', r));
      const elapsedS = (performance.now() - t0) / 1000;
      const { sent, skipped } = await done;
      const expected = sent * sizes.nodesSubs;
      const received = await drain(workers, base, expected);
      // Messages in the window: deliveries on B divided by its subscribers.
      const messages = (d1 - d0) / sizes.nodesSubs;
      const per = (us: number) => round(us / messages, 1);
      const nodeUs = cpu1.map((c, i) => per(c - cpu0[i]!));
      const redisUs = per(r1 - r0);
      return {
        rate: nodesRate,
        subscribers: sizes.nodesSubs,
        sent,
        skipped,
        expected,
        received,
        delivered: round(received / expected, 6),
        messagesPerS: Math.round(messages / elapsedS),
        cpuUsPerMessage: { a: nodeUs[0], b: nodeUs[1], c: nodeUs[2], redis: redisUs, all: round(nodeUs.reduce((x, y) => x + y!, 0)! + redisUs, 1) },
        p50Ms: ms(percentile(l1.latency, 50)),
        p99Ms: ms(percentile(l1.latency, 99)),
        // Per message, [a, b, c, redis]: read/write system calls (whole process), main-thread voluntary context switches.
        syscallsPerMessage: sys1.map((x, i) => round((x.syscalls - sys0[i]!.syscalls) / messages, 2)),
        switchesPerMessage: sys1.map((x, i) => round((x.switches - sys0[i]!.switches) / messages, 2)),
        redisCommands: commandStats(),
        /** Redis over the measured window only: commandstats and I/O counters (differences). */
        redisWindow: window,
      };
    } finally {
      publisher.close();
      for (const w of workers) w.close();
      await sleep(500);
    }
  });
}

// ---------------------------------------------------------------- report
type Results = Partial<Record<Workload, Partial<Record<ConfigName, any>>>>;

function table(results: Results): string {
  const out: string[] = [];
  const x = (v: number | null | undefined, base: number | undefined) => (v != null && base ? ` (${round(v / base, 2)}×)` : '');
  if (results.fanout) {
    const memory = results.fanout['sb-memory'];
    const base = memory && !memory.error ? memory : undefined;
    out.push(
      `### Fan-out: 1 publisher, ${sizes.subs} subscribers on one topic (split evenly over the nodes), ${sizes.rate} msg/s, ${sizes.payload}-byte payload, ${sizes.seconds} s measured`,
      '',
      '| configuration | delivered / expected | deliveries/s | broker CPU µs/delivery (× memory node) | + Redis µs/delivery | broker CPU % | Redis CPU % | p50 ms | p99 ms | p50 / p99 ms, subscriber on the other node |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const [name, r] of Object.entries(results.fanout)) {
      const label = CONFIG_LABEL[name as ConfigName];
      if (r.error) {
        out.push(`| ${label} | error: ${r.error} | | | | | | | | |`);
        continue;
      }
      const other = r.nodes > 1 ? `${r.otherNode.p50Ms} / ${r.otherNode.p99Ms}` : '(one node)';
      const withRedis = r.redisCpuUsPerDelivery == null ? '–' : `${round(r.brokerCpuUsPerDelivery + r.redisCpuUsPerDelivery, 3)}`;
      out.push(
        `| ${label} | ${r.received.toLocaleString('en-US')} / ${r.expected.toLocaleString('en-US')} | ${r.deliveriesPerS.toLocaleString('en-US')} | ${r.brokerCpuUsPerDelivery}${name === 'sb-memory' ? '' : x(r.brokerCpuUsPerDelivery, base?.brokerCpuUsPerDelivery)} | ${withRedis} | ${r.brokerCpuPercent} | ${r.redisCpuPercent ?? '–'} | ${r.p50Ms} | ${r.p99Ms} | ${other} |`,
      );
    }
    out.push('');
  }
  if (results.ingest) {
    out.push(
      `### Ingest: ${sizes.publishers} publishers × ${sizes.ingestRate} msg/s each (${(sizes.publishers * sizes.ingestRate).toLocaleString('en-US')}/s offered), each to its own topic \`in/<i>\`, no \`id\` (no ack), publishers spread over the nodes, 1 subscriber on \`in/#\``,
      '',
      '| configuration | publishes/s delivered | sent | loss | broker CPU µs/publish | Redis CPU µs/publish | broker CPU % | Redis CPU % | p50 ms | p99 ms |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const [name, r] of Object.entries(results.ingest)) {
      const label = CONFIG_LABEL[name as ConfigName];
      if (r.error) {
        out.push(`| ${label} | error: ${r.error} | | | | | | | | |`);
        continue;
      }
      out.push(
        `| ${label} | ${r.deliveredPerS.toLocaleString('en-US')} | ${r.sent.toLocaleString('en-US')} | ${r.loss === 0 ? '0' : (r.loss * 100).toFixed(3) + ' %'} | ${r.brokerCpuUsPerPublish} | ${r.redisCpuUsPerPublish ?? '–'} | ${r.brokerCpuPercent} | ${r.redisCpuPercent ?? '–'} | ${r.p50Ms} | ${r.p99Ms} |`,
      );
    }
    out.push('');
  }
  if (results.nodes) {
    out.push(
      `### Nodes: 3 nodes on one Redis, 1 publisher on node A at ${sizes.nodesRate.toLocaleString('en-US')} msg/s, ${sizes.nodesSubs} subscribers on node B, nobody on node C; CPU per published message`,
      '',
      '| configuration | delivered / expected | node A (publisher) µs | node B (subscribers) µs | node C (nobody) µs | Redis µs | all µs | p50 ms | p99 ms |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const [name, r] of Object.entries(results.nodes)) {
      const label = CONFIG_LABEL[name as ConfigName];
      if (r.error) {
        out.push(`| ${label} | error: ${r.error} | | | | | | | |`);
        continue;
      }
      const u = r.cpuUsPerMessage;
      out.push(`| ${label} | ${r.received.toLocaleString('en-US')} / ${r.expected.toLocaleString('en-US')} | ${u.a} | ${u.b} | ${u.c} | ${u.redis} | ${u.all} | ${r.p50Ms} | ${r.p99Ms} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** Puts the tables between the cluster markers of docs/benchmarks.md. */
function writeDocs(md: string, head: string): void {
  const doc = ROOT + 'docs/benchmarks.md';
  const text = readFileSync(doc, 'utf8');
  const start = '<!-- cluster:table -->';
  const end = '<!-- /cluster:table -->';
  const a = text.indexOf(start);
  const b = text.indexOf(end, a);
  if (a < 0 || b < 0) return;
  writeFileSync(doc, `${text.slice(0, a)}${start}\n${head}\n\n${md}\n${text.slice(b)}`);
  console.log('updated the cluster tables in docs/benchmarks.md');
}

async function main(): Promise<void> {
  const redisPid = await ensureRedis();
  const machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, redis: redisCli('info', 'server').match(/redis_version:(\S+)/)?.[1] };
  const loadBefore = loadavg().map((l) => round(l, 2));
  console.log(`# switchboard cluster bench\n${new Date().toISOString()} · ${machine.cores} cores · node ${machine.node} · redis ${machine.redis} (pid ${redisPid}) · load ${loadBefore.join(' ')}\n`);
  const results: Results = {};
  for (const w of workloads) {
    results[w] = {};
    const mine = flags.configs ? configs.filter((c) => (w === 'nodes') === [...NODE_CONFIGS, ...NODE_EXTRA].includes(c)) : w === 'nodes' ? NODE_CONFIGS : configs;
    for (const config of mine) {
      process.stdout.write(`${w} · ${config} … `);
      const started = Date.now();
      try {
        const r = w === 'fanout' ? await fanout(config, redisPid) : w === 'ingest' ? await ingest(config, redisPid) : await nodes(config, redisPid);
        results[w]![config] = r;
        const { redisCommands: _omit, redisWindow: _omit2, ...shown } = r as Record<string, unknown>;
        console.log(`${JSON.stringify(shown)} (${((Date.now() - started) / 1000).toFixed(0)} s, load ${loadavg()[0]!.toFixed(2)})`);
      } catch (err) {
        results[w]![config] = { error: (err as Error).message };
        console.log(`error: ${(err as Error).message}`);
      }
      await sleep(1000);
    }
  }
  if (configs.some((c) => c !== 'sb-memory')) redisCli('flushall'); // leave the machine's Redis as it was found: empty
  ownRedis?.kill('SIGKILL');
  const loadAfter = loadavg().map((l) => round(l, 2));
  const md = table(results);
  console.log('\n' + md);
  const date = new Date().toISOString();
  const file = flags.out ?? 'cluster.json';
  mkdirSync(HERE + 'results', { recursive: true });
  writeFileSync(
    HERE + 'results/' + file,
    JSON.stringify({ date, machine, loadavg: { before: loadBefore, after: loadAfter }, sizes, switchboardNodeFlags: [...startScriptFlags(), ...sbNodeFlags], switchboardEnv: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('SWITCHBOARD_'))), results, markdown: md }, null, 2) + '\n',
  );
  console.log(`written test/bench/results/${file}`);
  if (file === 'cluster.json') {
    const head = `Measured ${date.slice(0, 16).replace('T', ' ')} UTC on ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, Redis ${machine.redis}, with \`npm run bench:cluster\`; load average (1/5/15 min) ${loadBefore.join(' / ')} before, ${loadAfter.join(' / ')} after.`;
    writeDocs(md, head);
  }
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

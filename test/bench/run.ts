// Fan-out benchmark: Switchboard side by side with ws, Socket.IO, Mosquitto and NATS in one run.
// Each server runs in its own process; subscribers live in forked workers (raw sockets, frames counted by
// header); one publisher process publishes at a fixed rate. Server CPU and RSS come from /proc/<pid>.
//   npm run bench                      full run (about 6 minutes), writes test/bench/results/latest.json
//   npm run bench -- --quick           small sizes, a smoke run (results/quick.json)
//   npm run bench -- --servers switchboard,nats --workloads steady,burst
//   npm run bench -- --only ingest --ingest 200x100,200x40 --out ingest.json   (--only is --workloads)
//   npm run bench -- --only ingest,memory --ingest 200x100 --servers switchboard,nats,mosquitto,ws   the targets' table alone
import { cpus } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ALL_SERVERS, PROTO, cpuUs, rssBytes, sleep, startScriptFlags, startServer, type RunningServer, type ServerName } from './servers.js';
import { nowUs, type Target } from './wire.js';
import { Worker } from './worker.js';
import { defaults } from '../../src/config.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOURCES = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];
const PER_WORKER = 9_000; // well under the 20 000 open files of one process

type Workload = 'steady' | 'burst' | 'memory' | 'connect' | 'scale' | 'ingest';
const ALL_WORKLOADS: Workload[] = ['steady', 'burst', 'memory', 'connect', 'scale', 'ingest'];
/** Which servers each workload runs against (scale needs a heartbeat the bench can configure). */
// switchboard-mqtt (Switchboard over its MQTT listener) runs only when named in --servers: beside Mosquitto, same clients.
const WORKLOAD_SERVERS: Record<Workload, ServerName[]> = {
  steady: [...ALL_SERVERS, 'switchboard-mqtt'],
  burst: [...ALL_SERVERS, 'switchboard-mqtt'],
  memory: [...ALL_SERVERS, 'switchboard-mqtt'],
  connect: [...ALL_SERVERS, 'switchboard-mqtt'],
  scale: ['switchboard', 'ws'],
  ingest: ['switchboard', 'nats', 'mosquitto', 'switchboard-mqtt'], // topics and a wildcard: the two baselines without them sit out
};

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    servers: { type: 'string' },
    workloads: { type: 'string' },
    only: { type: 'string' },
    ingest: { type: 'string' },
    'ingest-mailbox': { type: 'string' },
    seconds: { type: 'string' },
    'steady-subs': { type: 'string' },
    'steady-rate': { type: 'string' },
    'burst-subs': { type: 'string' },
    'burst-rate': { type: 'string' },
    'memory-conns': { type: 'string' },
    'connect-conns': { type: 'string' },
    'scale-conns': { type: 'string' },
    'sb-flags': { type: 'string' },
    'sb-dist': { type: 'string' },
    out: { type: 'string' },
  },
});
const env = (name: string): string | undefined => process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
const num = (name: keyof typeof flags, full: number, quick: number): number => {
  const raw = (flags[name] as string | undefined) ?? env(name);
  return raw !== undefined ? Number(raw) : flags.quick ? quick : full;
};

const sizes = {
  seconds: num('seconds', 10, 3),
  warmupSeconds: flags.quick ? 1 : 2,
  payload: 64,
  steadySubs: num('steady-subs', 1000, 100),
  steadyRate: num('steady-rate', 100, 100),
  burstSubs: num('burst-subs', 200, 50),
  burstRate: num('burst-rate', 2000, 1000),
  memoryConns: num('memory-conns', 10_000, 1000),
  connectConns: num('connect-conns', 5000, 500),
  scaleConns: num('scale-conns', 19_500, 2000),
  scaleHeartbeatMs: 5000,
  /** Switchboard's --mailbox-size in the ingest runs (its default). */
  ingestMailbox: num('ingest-mailbox', defaults.mailboxSize, 1000),
  /** Ingest runs: publishers × msg/s each. */
  ingest: ((flags.ingest as string | undefined) ?? env('ingest') ?? (flags.quick ? '50x20' : '200x100,200x40,200x20')).split(',').map((x) => {
    const [p, r] = x.split('x').map(Number);
    return { publishers: p!, rate: r! };
  }),
};
const servers = ((flags.servers ?? env('servers'))?.split(',') as ServerName[] | undefined) ?? ALL_SERVERS;
const workloads = ((flags.workloads ?? flags.only ?? env('workloads'))?.split(',') as Workload[] | undefined) ?? ALL_WORKLOADS;
const sbFlags = (flags['sb-flags'] ?? env('sb-flags') ?? '').split(' ').filter(Boolean);
const sbDist = flags['sb-dist'] ?? env('sb-dist');
let nextPort = 18_100;

// ---------------------------------------------------------------- workers

interface Counts {
  deliveries: number;
  lastUs: number;
  closed: number;
  errors: number;
  lastError: string;
  latency: number[];
}

class Subscribers {
  readonly workers: Worker[] = [];
  openMs = 0;
  constructor(private readonly target: Target, private readonly count: number, private readonly nWorkers: number) {}

  /** Opens the subscribers; with `latency`, one more subscriber in a process of its own decodes stamps. */
  async open(latency: boolean, concurrency = 100, topic?: string): Promise<{ ready: number; failed: number; lastError: string }> {
    const counts: number[] = [];
    const per = Math.ceil(this.count / this.nWorkers);
    for (let left = this.count; left > 0; left -= per) counts.push(Math.min(per, left));
    const start = (count: number, w: number, isLatency: boolean) => {
      const worker = new Worker('subscribers.ts');
      this.workers.push(worker);
      return worker.ask(
        { type: 'open', target: this.target, count, latency: isLatency, concurrency, sources: SOURCES, offset: w, topic },
        'ready',
        300_000,
      );
    };
    const all = await Promise.all(counts.map((count, w) => start(count, w, false)));
    // Subscribes last, so it is the last one a fan-out reaches: latency covers the whole fan-out. Its own
    // process, so it measures the server and not the backlog of a busy load-generator process.
    if (latency) all.push(await start(1, counts.length, true));
    this.openMs = Math.max(0, ...all.map((a) => a.ms));
    return { ready: sum(all.map((a) => a.ready)), failed: sum(all.map((a) => a.failed)), lastError: all.map((a) => a.lastError).find(Boolean) ?? '' };
  }

  async counts(resetLatency = false): Promise<Counts> {
    const all: Counts[] = await Promise.all(this.workers.map((w) => w.ask({ type: 'count', resetLatency }, 'count')));
    return {
      deliveries: sum(all.map((c) => c.deliveries)),
      lastUs: Math.max(...all.map((c) => c.lastUs)),
      closed: sum(all.map((c) => c.closed)),
      errors: sum(all.map((c) => c.errors)),
      lastError: all.map((c) => c.lastError).find(Boolean) ?? '',
      latency: all.flatMap((c) => c.latency),
    };
  }

  close(): void {
    for (const w of this.workers) w.close();
  }
}

class Publisher {
  private readonly worker = new Worker('publisher.ts');
  async connect(target: Target): Promise<void> {
    await this.worker.ask({ type: 'start', target }, 'connected', 15_000);
  }
  run(rate: number, seconds: number, size: number): Promise<{ sent: number; skipped: number }> {
    return this.worker.ask({ type: 'go', rate, seconds, size }, 'done', (seconds + 30) * 1000);
  }
  one(size: number): Promise<{ sent: number }> {
    return this.worker.ask({ type: 'go', rate: 0, seconds: 0, size, count: 1 }, 'done');
  }
  close(): void {
    this.worker.close();
  }
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const round = (x: number, d = 2): number => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);

async function withServer<T>(name: ServerName, heartbeatMs: number | undefined, fn: (s: RunningServer) => Promise<T>, mailboxSize?: number): Promise<T> {
  const server = await startServer(name, { port: nextPort++, heartbeatMs, nodeFlags: sbFlags, dist: sbDist, mailboxSize });
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

function targetOf(server: RunningServer): Target {
  return { proto: PROTO[server.name], host: '127.0.0.1', port: server.port };
}

class IngestPublishers {
  private readonly worker = new Worker('ingest-publishers.ts');
  async connect(target: Target, first: number, count: number, sources: string[]): Promise<void> {
    await this.worker.ask({ type: 'start', targets: [target], first, count, sources }, 'connected', 60_000);
  }
  run(rate: number, seconds: number, size: number): Promise<{ sent: number; skipped: number; closed: number }> {
    return this.worker.ask({ type: 'go', rate, seconds, size }, 'done', (seconds + 30) * 1000);
  }
  sent(): Promise<{ sent: number; skipped: number; closed: number }> {
    return this.worker.ask({ type: 'count' }, 'count');
  }
  close(): void {
    this.worker.close();
  }
}

// ---------------------------------------------------------------- workloads
interface FanoutResult {
  subscribers: number;
  rate: number;
  deliveriesPerS: number;
  cpuUsPerDelivery: number;
  cpuPercent: number;
  p50Ms: number;
  p99Ms: number;
  loss: number;
  sent: number;
  expected: number;
  received: number;
  rssMB: number;
  closed: number;
}

async function fanout(name: ServerName, subs: number, rate: number): Promise<FanoutResult> {
  return withServer(name, undefined, async (server) => {
    const target = targetOf(server);
    // One of the `subs` subscribers is the latency subscriber, in a process of its own.
    const subscribers = new Subscribers(target, subs - 1, subs >= 200 ? 2 : 1);
    const publisher = new Publisher();
    try {
      const opened = await subscribers.open(true);
      if (opened.failed > 0) throw new Error(`${opened.failed} subscribers failed: ${opened.lastError}`);
      await publisher.connect(target);
      await sleep(500);
      const base = await subscribers.counts();
      const { warmupSeconds, seconds, payload } = sizes;
      const done = publisher.run(rate, warmupSeconds + seconds, payload);
      await sleep(warmupSeconds * 1000);
      const c0 = await subscribers.counts(true);
      const cpu0 = cpuUs(server.pid);
      const t0 = performance.now();
      await sleep(seconds * 1000);
      const c1 = await subscribers.counts(true);
      const cpu1 = cpuUs(server.pid);
      const elapsedS = (performance.now() - t0) / 1000;
      const rss = rssBytes(server.pid);
      const { sent } = await done;
      // Drain: wait until every expected delivery arrived, or until deliveries stop coming.
      const expected = sent * subs;
      let last = await subscribers.counts();
      for (let i = 0; i < 50 && last.deliveries - base.deliveries < expected; i++) {
        await sleep(200);
        const now = await subscribers.counts();
        if (now.deliveries === last.deliveries && i > 5) break;
        last = now;
      }
      const received = last.deliveries - base.deliveries;
      const window = c1.deliveries - c0.deliveries;
      const lat = c1.latency;
      return {
        subscribers: subs,
        rate,
        deliveriesPerS: Math.round(window / elapsedS),
        cpuUsPerDelivery: round((cpu1 - cpu0) / window, 3),
        cpuPercent: round(((cpu1 - cpu0) / (elapsedS * 1e6)) * 100, 1),
        p50Ms: round(percentile(lat, 50) / 1000, 3),
        p99Ms: round(percentile(lat, 99) / 1000, 3),
        loss: round(Math.max(0, 1 - received / expected), 6),
        sent,
        expected,
        received,
        rssMB: round(rss / 2 ** 20, 1),
        closed: last.closed,
      };
    } finally {
      publisher.close();
      subscribers.close();
      await sleep(300);
    }
  });
}

interface IngestResult {
  publishers: number;
  rate: number;
  publishesPerS: number;
  sent: number;
  skipped: number;
  expected: number;
  received: number;
  loss: number;
  subscriberClosed: boolean;
  publishersClosed: number;
  cpuUsPerPublish: number;
  cpuPercent: number;
  p50Ms: number;
  p99Ms: number;
  rssMB: number;
}

/**
 * Ingest: many publishers, each at a fixed rate to its own topic `in/<i>` (Switchboard: no `id`, no ack), one
 * subscriber on `in/#` (NATS `in.>`, MQTT QoS 0). Switchboard runs with its default mailbox (--mailbox-size): the
 * question is whether the one wildcard subscriber keeps up as users run it.
 */
async function ingest(name: ServerName, publishers: number, rate: number): Promise<IngestResult> {
  return withServer(
    name,
    undefined,
    async (server) => {
      const target = targetOf(server);
      const subscriber = new Subscribers(target, 0, 1);
      const halves = [Math.ceil(publishers / 2), Math.floor(publishers / 2)].filter((n) => n > 0);
      const pubs = halves.map(() => new IngestPublishers());
      try {
        const opened = await subscriber.open(true, 1, 'in/#');
        if (opened.failed > 0) throw new Error(`subscriber failed: ${opened.lastError}`);
        await Promise.all(pubs.map((p, k) => p.connect(target, k * halves[0]!, halves[k]!, SOURCES)));
        await sleep(500);
        const { warmupSeconds, seconds, payload } = sizes;
        const base = await subscriber.counts();
        const runs = pubs.map((p) => p.run(rate, warmupSeconds + seconds, payload));
        await sleep(warmupSeconds * 1000);
        const sent0 = sum((await Promise.all(pubs.map((p) => p.sent()))).map((x) => x.sent));
        await subscriber.counts(true);
        const cpu0 = cpuUs(server.pid);
        const t0 = performance.now();
        await sleep(seconds * 1000);
        const cpu1 = cpuUs(server.pid);
        const elapsedS = (performance.now() - t0) / 1000;
        const sent1 = sum((await Promise.all(pubs.map((p) => p.sent()))).map((x) => x.sent));
        const c1 = await subscriber.counts(true);
        const rss = rssBytes(server.pid);
        const done = await Promise.all(runs);
        const sent = sum(done.map((d) => d.sent));
        let last = await subscriber.counts();
        for (let i = 0; i < 50 && last.deliveries - base.deliveries < sent; i++) {
          await sleep(200);
          const now = await subscriber.counts();
          if (now.deliveries === last.deliveries && i > 5) break;
          last = now;
        }
        const received = last.deliveries - base.deliveries;
        const window = sent1 - sent0;
        return {
          publishers,
          rate,
          publishesPerS: Math.round(window / elapsedS),
          sent,
          skipped: sum(done.map((d) => d.skipped)),
          expected: sent,
          received,
          loss: round(Math.max(0, 1 - received / sent), 6),
          subscriberClosed: last.closed > 0,
          publishersClosed: sum(done.map((d) => d.closed)),
          cpuUsPerPublish: round((cpu1 - cpu0) / window, 2),
          cpuPercent: round(((cpu1 - cpu0) / (elapsedS * 1e6)) * 100, 1),
          p50Ms: round(percentile(c1.latency, 50) / 1000, 3),
          p99Ms: round(percentile(c1.latency, 99) / 1000, 3),
          rssMB: round(rss / 2 ** 20, 1),
        };
      } finally {
        for (const p of pubs) p.close();
        subscriber.close();
        await sleep(300);
      }
    },
    sizes.ingestMailbox,
  );
}

async function memory(name: ServerName, conns: number) {
  return withServer(name, undefined, async (server) => {
    await sleep(1000);
    const before = rssBytes(server.pid);
    const subscribers = new Subscribers(targetOf(server), conns, Math.ceil(conns / PER_WORKER) + 1);
    try {
      const opened = await subscribers.open(false, 200);
      // RSS right after the connection storm, and once settled (idle: nothing is sent for 12 s but heartbeats).
      await sleep(3000);
      const early = rssBytes(server.pid);
      await sleep(9000);
      const after = rssBytes(server.pid);
      const held = opened.ready - (await subscribers.counts()).closed;
      return {
        connections: held,
        failed: opened.failed,
        ...(opened.failed > 0 ? { lastError: opened.lastError } : {}),
        rssBeforeMB: round(before / 2 ** 20, 1),
        rssAfterMB: round(after / 2 ** 20, 1),
        rssPerConnKB: round((after - before) / held / 1024, 2),
        rssPerConnAt3sKB: round((early - before) / held / 1024, 2),
      };
    } finally {
      subscribers.close();
      await sleep(500);
    }
  });
}

async function connectRate(name: ServerName, conns: number) {
  return withServer(name, undefined, async (server) => {
    await sleep(500);
    const subscribers = new Subscribers(targetOf(server), conns, 2);
    try {
      const cpu0 = cpuUs(server.pid);
      const opened = await subscribers.open(false, 64);
      const cpu1 = cpuUs(server.pid);
      return {
        connections: opened.ready,
        failed: opened.failed,
        perS: Math.round(opened.ready / (subscribers.openMs / 1000)),
        cpuUsPerConnect: round((cpu1 - cpu0) / opened.ready, 1),
      };
    } finally {
      subscribers.close();
      await sleep(500);
    }
  });
}

async function scale(name: ServerName, conns: number) {
  const hb = sizes.scaleHeartbeatMs;
  return withServer(name, hb, async (server) => {
    await sleep(1000);
    const before = rssBytes(server.pid);
    const target = targetOf(server);
    const subscribers = new Subscribers(target, conns, Math.max(2, Math.ceil(conns / PER_WORKER)));
    const publisher = new Publisher();
    try {
      const opened = await subscribers.open(false, 200);
      // Hold them through at least two heartbeat rounds: unanswered pings would close them (4002).
      await sleep(hb * 2.5);
      const c0 = await subscribers.counts();
      const held = opened.ready - c0.closed;
      await publisher.connect(target);
      const t0 = nowUs();
      await publisher.one(sizes.payload);
      let c1 = c0;
      for (let i = 0; i < 50; i++) {
        await sleep(100);
        c1 = await subscribers.counts();
        if (c1.deliveries - c0.deliveries >= held) break;
      }
      const reached = c1.deliveries - c0.deliveries;
      // Mass disconnect: every client goes at once; how much server CPU and time until it is quiet again.
      publisher.close();
      const cpuClose0 = cpuUs(server.pid);
      const closeStart = performance.now();
      subscribers.close();
      let quietAt = performance.now();
      for (let prev = cpuClose0, still = 0; still < 3 && performance.now() - closeStart < 60_000; ) {
        await sleep(500);
        const now = cpuUs(server.pid);
        if (now - prev < 20_000) still++;
        else {
          still = 0;
          quietAt = performance.now();
        }
        prev = now;
      }
      const teardownCpuMs = round((cpuUs(server.pid) - cpuClose0) / 1000, 0);
      return {
        attempted: conns,
        opened: opened.ready,
        failed: opened.failed,
        held,
        openPerS: Math.round(opened.ready / (subscribers.openMs / 1000)),
        reached,
        allWithinMs: reached >= held ? round((c1.lastUs - t0) / 1000, 1) : null,
        rssPerConnKB: round((rssBytes(server.pid) - before) / Math.max(1, held) / 1024, 2),
        heartbeatMs: hb,
        teardownCpuMs,
        teardownS: round((quietAt - closeStart) / 1000, 1),
        lastError: opened.lastError || c1.lastError,
      };
    } finally {
      publisher.close();
      subscribers.close();
      await sleep(1000);
    }
  });
}

// ---------------------------------------------------------------- report
type Results = Partial<Record<Workload, Partial<Record<ServerName, any>>>>;

/**
 * The two targets of issue 21 in one table, with the peers of the same run: ingest CPU per publish (the first ingest
 * configuration, 200 × 100 by default) and idle RSS per connection at `--memory-conns` WebSocket connections.
 */
function summary(results: Results): string[] {
  const ingestRows = results.ingest as Partial<Record<ServerName, Record<string, IngestResult | { error: string }>>> | undefined;
  const memoryRows = results.memory as Partial<Record<ServerName, { rssPerConnKB: number; error?: string }>> | undefined;
  if (!ingestRows && !memoryRows) return [];
  const first = sizes.ingest[0]!;
  const key = `${first.publishers}x${first.rate}`;
  const cols: ServerName[] = ['switchboard', 'nats', 'mosquitto', 'ws'];
  const ingestCell = (name: ServerName): string => {
    const r = ingestRows?.[name]?.[key];
    if (!r) return '—';
    if ('error' in r) return `error: ${r.error}`;
    const lost = r.received < r.expected ? `, lost ${(r.expected - r.received).toLocaleString('en-US')}` : '';
    return `${r.cpuUsPerPublish} µs${r.subscriberClosed ? ' (subscriber closed)' : lost}`;
  };
  const memoryCell = (name: ServerName): string => {
    const r = memoryRows?.[name];
    if (!r) return '—';
    if (r.error) return `error: ${r.error}`;
    return `${r.rssPerConnKB} KB${name === 'nats' || name === 'mosquitto' ? '¹' : ''}`;
  };
  return [
    '### the targets (issue 21), one run',
    '',
    '| measured in this run (raw-socket load, server CPU and RSS from /proc) | Switchboard | NATS | Mosquitto | bare `ws` |',
    '|---|---|---|---|---|',
    `| ingest, ${first.publishers} publishers × ${first.rate} msg/s to their own topics, one \`in/#\` subscriber: CPU per publish | ${cols.map(ingestCell).join(' | ')} |`,
    `| idle memory per connection at ${sizes.memoryConns.toLocaleString('en-US')} connections | ${cols.map(memoryCell).join(' | ')} |`,
    '',
    '¹ NATS and Mosquitto hold their own protocol\'s connections (not WebSocket), and as long-running daemons keep memory of earlier workloads: a lower bound.',
    '',
  ];
}

function table(results: Results): string {
  const out: string[] = [...summary(results)];
  const ratio = (v: number, base: number | undefined) => (base && Number.isFinite(v) && Number.isFinite(base) ? ` (${round(v / base, 2)}×)` : '');
  for (const w of ['steady', 'burst'] as const) {
    const rows = results[w];
    if (!rows) continue;
    const sb = rows.switchboard as FanoutResult | undefined;
    const any = Object.values(rows).find((r) => r && !r.error) as FanoutResult | undefined;
    out.push(`### ${w}: ${any?.subscribers ?? '?'} subscribers × ${any?.rate ?? '?'} msg/s, ${sizes.payload}-byte payload`, '');
    out.push('| server | deliveries/s | server CPU µs/delivery (× Switchboard) | CPU % | p50 ms | p99 ms | loss | RSS MB |', '|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const [name, r] of Object.entries(rows)) {
      if (r.error) out.push(`| ${name} | error: ${r.error} | | | | | | |`);
      else
        out.push(
          `| ${name} | ${r.deliveriesPerS.toLocaleString('en-US')} | ${r.cpuUsPerDelivery}${name === 'switchboard' ? '' : ratio(r.cpuUsPerDelivery, sb?.cpuUsPerDelivery)} | ${r.cpuPercent} | ${r.p50Ms} | ${r.p99Ms} | ${r.loss === 0 ? '0' : (r.loss * 100).toFixed(3) + ' %'} | ${r.rssMB} |`,
        );
    }
    out.push('');
  }
  if (results.ingest) {
    out.push(
      `### ingest: P publishers × R msg/s, each to its own topic \`in/<i>\` (Switchboard: \`pub\` without \`id\`), one subscriber on \`in/#\` (NATS \`in.>\`, MQTT QoS 0); Switchboard with --mailbox-size ${sizes.ingestMailbox}${sizes.ingestMailbox === defaults.mailboxSize ? ' (its default)' : ''}`,
      '',
      '| P × R | server | delivered / expected | subscriber closed | server CPU µs/publish (× NATS) | CPU % | p50 ms | p99 ms | RSS MB |',
      '|---|---|---:|---|---:|---:|---:|---:|---:|',
    );
    const byConfig = results.ingest as Partial<Record<ServerName, Record<string, IngestResult | { error: string }>>>;
    for (const { publishers, rate } of sizes.ingest) {
      const key = `${publishers}x${rate}`;
      const nats = byConfig.nats?.[key] as IngestResult | undefined;
      for (const [name, rows] of Object.entries(byConfig)) {
        const r = rows?.[key];
        if (!r) continue;
        if ('error' in r) out.push(`| ${publishers} × ${rate} | ${name} | error: ${r.error} | | | | | | |`);
        else
          out.push(
            `| ${publishers} × ${rate} | ${name} | ${r.received.toLocaleString('en-US')} / ${r.expected.toLocaleString('en-US')} | ${r.subscriberClosed ? 'closed' : 'no'} | ${r.cpuUsPerPublish}${name === 'nats' ? '' : ratio(r.cpuUsPerPublish, nats?.cpuUsPerPublish)} | ${r.cpuPercent} | ${r.p50Ms} | ${r.p99Ms} | ${r.rssMB} |`,
          );
      }
    }
    out.push('');
  }
  if (results.memory) {
    out.push(
      `### idle memory: ${sizes.memoryConns.toLocaleString('en-US')} connections (RSS per connection = (RSS after − RSS before) / held; after = 12 s after the last connect)`,
      '',
      '| server | held | RSS before MB | RSS after MB | RSS per connection KB | same, 3 s after the last connect |',
      '|---|---:|---:|---:|---:|---:|',
    );
    for (const [name, r] of Object.entries(results.memory)) {
      if (r.error) out.push(`| ${name} | error: ${r.error} | | | | |`);
      else out.push(`| ${name} | ${r.connections} | ${r.rssBeforeMB} | ${r.rssAfterMB} | ${r.rssPerConnKB} | ${r.rssPerConnAt3sKB} |`);
    }
    out.push('');
  }
  if (results.connect) {
    out.push(`### connect rate: ${sizes.connectConns.toLocaleString('en-US')} connections, 128 handshakes in flight (handshake + first server frame)`, '', '| server | connections/s | server CPU µs/connect |', '|---|---:|---:|');
    for (const [name, r] of Object.entries(results.connect)) {
      if (r.error) out.push(`| ${name} | error: ${r.error} | |`);
      else out.push(`| ${name} | ${r.perS.toLocaleString('en-US')} | ${r.cpuUsPerConnect} |`);
    }
    out.push('');
  }
  if (results.scale) {
    out.push(
      `### scale: idle WebSocket connections in one server process (heartbeat every ${sizes.scaleHeartbeatMs / 1000} s, held through 2.5 rounds, then one message to all, then all disconnect at once)`,
      '',
      '| server | attempted | held | one message reached | all within ms | RSS per connection KB | mass disconnect: server CPU ms |',
      '|---|---:|---:|---:|---:|---:|---:|',
    );
    for (const [name, r] of Object.entries(results.scale)) {
      if (r.error) out.push(`| ${name} | error: ${r.error} | | | | | |`);
      else out.push(`| ${name} | ${r.attempted} | ${r.held} | ${r.reached} | ${r.allWithinMs ?? 'not all'} | ${r.rssPerConnKB} | ${r.teardownCpuMs} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** Puts the table between the bench markers of docs/benchmarks.md. */
function writeResultsSection(md: string, machine: { cores: number; cpu: string; node: string }): void {
  const doc = ROOT + 'docs/benchmarks.md';
  let text: string;
  try {
    text = readFileSync(doc, 'utf8');
  } catch {
    return;
  }
  const start = '<!-- bench:table -->';
  const end = '<!-- /bench:table -->';
  const a = text.indexOf(start);
  if (a < 0) return;
  const b = text.indexOf(end, a);
  const head = `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, with \`npm run bench\`.`;
  const body = `${start}\n${head}\n\n${md}\n${end}`;
  writeFileSync(doc, text.slice(0, a) + body + (b < 0 ? text.slice(a + start.length) : text.slice(b + end.length)));
  console.log('updated the results table in docs/benchmarks.md');
}

async function main(): Promise<void> {
  const results: Results = {};
  const machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, platform: process.platform };
  console.log(`# switchboard fan-out bench ${flags.quick ? '(quick)' : ''}\n${new Date().toISOString()} · ${machine.cores} cores · ${machine.cpu} · node ${machine.node}\n`);
  for (const w of workloads) {
    results[w] = {};
    if (w === 'ingest') {
      // Configurations outside, servers inside: the servers of one configuration run minutes apart, not tens of minutes.
      for (const { publishers, rate } of sizes.ingest) {
        for (const name of servers.filter((s) => WORKLOAD_SERVERS.ingest.includes(s))) {
          const key = `${publishers}x${rate}`;
          process.stdout.write(`ingest ${key} · ${name} (loadavg ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}) … `);
          const row = ((results.ingest![name] as Record<string, unknown> | undefined) ??= {});
          try {
            row[key] = await ingest(name, publishers, rate);
            console.log(JSON.stringify(row[key]));
          } catch (err) {
            row[key] = { error: (err as Error).message };
            console.log(`error: ${(err as Error).message}`);
          }
          await sleep(1000);
        }
      }
      continue;
    }
    for (const name of servers.filter((s) => WORKLOAD_SERVERS[w].includes(s))) {
      const label = `${w} · ${name}`;
      process.stdout.write(`${label} … `);
      const started = Date.now();
      try {
        const r =
          w === 'steady' ? await fanout(name, sizes.steadySubs, sizes.steadyRate)
          : w === 'burst' ? await fanout(name, sizes.burstSubs, sizes.burstRate)
          : w === 'memory' ? await memory(name, sizes.memoryConns)
          : w === 'connect' ? await connectRate(name, sizes.connectConns)
          : await scale(name, sizes.scaleConns);
        results[w]![name] = r;
        console.log(`${JSON.stringify(r)} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
      } catch (err) {
        results[w]![name] = { error: (err as Error).message };
        console.log(`error: ${(err as Error).message}`);
      }
      await sleep(1000);
    }
  }
  const md = table(results);
  console.log('\n' + md);
  const dir = HERE + 'results/';
  mkdirSync(dir, { recursive: true });
  const file = flags.out ?? (flags.quick ? 'quick.json' : 'latest.json');
  const path = file.startsWith('/') ? file : dir + file;
  writeFileSync(path, JSON.stringify({ date: new Date().toISOString(), machine, sizes, switchboardNodeFlags: [...startScriptFlags(), ...sbFlags], results, markdown: md }, null, 2) + '\n');
  console.log(`written ${file.startsWith('/') ? file : `test/bench/results/${file}`}`);
  if (file === 'latest.json') writeResultsSection(md, machine);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

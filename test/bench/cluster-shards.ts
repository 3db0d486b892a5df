// Redis Cluster benchmark (issue 20): the message rate one Switchboard node sustains without loss on a Redis Cluster of
// three masters, against one master (a cluster with one master holding every slot, the same code path) and one plain
// Redis (classic PUBLISH, the reference). One broker process (`dist/cli.js serve --redis …`), `--topics` topics
// `in/<i>` spread over the partitions (so over every master), `--subs-per-topic` subscribers on each, one publisher
// connection per topic (no `id`: no ack), all in two load-generator processes. The offered rate rises step by step
// until a step loses messages (fewer delivered than sent × subscribers per topic after a drain, a publisher that
// could not send, or a subscriber closed); the last step without loss is the result. Per step: the CPU of the broker
// and of each redis-server (utime+stime from /proc) per published message and in % of one core, and the load average
// (the machine is shared). The Redis servers are the bench's own, on free ports.
//   npm run bench:shards                                   writes test/bench/results/cluster-shards.json
//   npm run bench:shards -- --configs cluster-3 --seconds 5 --topics 48 --subs-per-topic 2 --start 1000
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { cpuUs, sleep, startServer, type RunningServer } from './servers.js';
import type { Target } from './wire.js';
import { Worker } from './worker.js';
import { freeClusterPorts } from '../cluster/redis.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { keySlot } from '../../src/engine/redis/outcome.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const SOURCES = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];
const execFileP = promisify(execFile);

type ConfigName = 'redis-1' | 'cluster-1' | 'cluster-3';
const LABEL: Record<ConfigName, string> = {
  'redis-1': 'one Redis (not a cluster: classic PUBLISH)',
  'cluster-1': 'Redis Cluster, 1 master (sharded PUB/SUB)',
  'cluster-3': 'Redis Cluster, 3 masters (sharded PUB/SUB)',
};

const { values: flags } = parseArgs({
  options: {
    configs: { type: 'string' },
    seconds: { type: 'string' },
    topics: { type: 'string' },
    'subs-per-topic': { type: 'string' },
    start: { type: 'string' },
    factor: { type: 'string' },
    max: { type: 'string' },
    out: { type: 'string' },
  },
});
const configs = (flags.configs?.split(',') as ConfigName[] | undefined) ?? ['cluster-1', 'cluster-3', 'redis-1'];
const sizes = {
  seconds: Number(flags.seconds ?? 5),
  topics: Number(flags.topics ?? 48),
  subsPerTopic: Number(flags['subs-per-topic'] ?? 2),
  payload: 64,
  start: Number(flags.start ?? 1000),
  factor: Number(flags.factor ?? 1.25),
  max: Number(flags.max ?? 40_000),
};

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

// ---------------------------------------------------------------- Redis: the bench's own servers
interface Redises {
  url: string;
  /** port → pid */
  servers: Map<number, number>;
  /** For a cluster: which master (port) serves each topic. */
  ownerOfTopic: (topic: string) => Promise<number | undefined>;
  stop(): Promise<void>;
}

function cli(port: number, ...args: string[]): Promise<string> {
  return execFileP('redis-cli', ['-p', String(port), ...args]).then((r) => r.stdout.trim());
}

async function startRedises(config: ConfigName): Promise<Redises> {
  const masters = config === 'cluster-3' ? 3 : 1;
  const cluster = config !== 'redis-1';
  const ports = await freeClusterPorts(masters);
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-shards-'));
  const children: ChildProcess[] = [];
  for (const port of ports) {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
    // A lone master has never met another node and does not know its own address (CLUSTER SLOTS says ""): announce it.
    if (cluster) args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-announce-ip', '127.0.0.1');
    children.push(spawn('redis-server', args, { stdio: 'ignore' }));
  }
  const stop = async () => {
    for (const c of children) c.kill('SIGKILL');
    await sleep(200);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      for (let i = 0; ; i++) {
        if ((await cli(port, 'ping').catch(() => '')) === 'PONG') break;
        if (i > 100) throw new Error(`redis-server on ${port} did not start`);
        await sleep(50);
      }
    }
    if (cluster && masters === 1) await cli(ports[0]!, 'cluster', 'addslotsrange', '0', '16383');
    if (cluster && masters > 1) await execFileP('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-yes'], { timeout: 30_000 });
    if (cluster) {
      for (let i = 0; ; i++) {
        const infos = await Promise.all(ports.map((p) => cli(p, 'cluster', 'info')));
        if (infos.every((s) => /cluster_state:ok/.test(s) && new RegExp(`cluster_known_nodes:${masters}\\b`).test(s))) break;
        if (i > 300) throw new Error('cluster not ok');
        await sleep(100);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const servers = new Map(ports.map((p, i) => [p, children[i]!.pid!]));
  const ranges: { from: number; to: number; port: number }[] = [];
  if (cluster) {
    for (const line of (await cli(ports[0]!, 'cluster', 'nodes')).split('\n')) {
      const parts = line.split(' ');
      const port = Number(parts[1]!.split('@')[0]!.split(':').at(-1));
      for (const r of parts.slice(8)) {
        const [from, to = from] = r.split('-').map(Number) as [number, number?];
        ranges.push({ from, to: to!, port });
      }
    }
  }
  return {
    url: cluster ? `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}` : `redis://127.0.0.1:${ports[0]}`,
    servers,
    ownerOfTopic: async (topic) => {
      const slot = keySlot(KEYS.meta(topic));
      return ranges.find((r) => slot >= r.from && slot <= r.to)?.port;
    },
    stop,
  };
}

// ---------------------------------------------------------------- one step: `rate` msg/s offered in all
interface Step {
  rate: number;
  sent: number;
  skipped: number;
  expected: number;
  delivered: number;
  lossless: boolean;
  closedSubs: number;
  brokerCpuPercent: number;
  brokerCpuUsPerMsg: number;
  redisCpuPercent: Record<string, number>;
  redisCpuUsPerMsg: number;
  load: string;
}

async function deliveries(w: Worker): Promise<{ deliveries: number; closed: number }> {
  return w.ask({ type: 'count' }, 'count');
}

async function run(config: ConfigName) {
  const redis = await startRedises(config);
  let broker: RunningServer | undefined;
  const subs = new Worker('subscribers.ts');
  const pubs = new Worker('ingest-publishers.ts');
  try {
    broker = await startServer('switchboard', { port: 18_600 + configs.indexOf(config), redisUrl: redis.url });
    const target: Target = { proto: 'sb', host: '127.0.0.1', port: broker.port };
    const topics = Array.from({ length: sizes.topics }, (_, i) => `in/${i}`);
    const perMaster: Record<string, number> = {};
    for (const t of topics) {
      const owner = await redis.ownerOfTopic(t);
      if (owner !== undefined) perMaster[owner] = (perMaster[owner] ?? 0) + 1;
    }
    const opened = await subs.ask<{ failed: number; lastError: string }>({ type: 'open', target, count: sizes.topics * sizes.subsPerTopic, latency: false, concurrency: 50, sources: SOURCES, offset: 0, topics }, 'ready', 120_000);
    if (opened.failed > 0) throw new Error(`${opened.failed} subscribers failed: ${opened.lastError}`);
    await pubs.ask({ type: 'start', targets: [target], first: 0, count: sizes.topics, sources: SOURCES }, 'connected', 60_000);
    await sleep(1000);
    const steps: Step[] = [];
    let sentBefore = 0;
    let skippedBefore = 0;
    for (let rate = sizes.start; rate <= sizes.max; rate = Math.round((rate * sizes.factor) / 100) * 100) {
      const d0 = (await deliveries(subs)).deliveries;
      const b0 = cpuUs(broker.pid);
      const r0 = new Map([...redis.servers].map(([port, pid]) => [port, cpuUs(pid)]));
      const t0 = performance.now();
      const done = await pubs.ask<{ sent: number; skipped: number; closed: number }>({ type: 'go', rate: rate / sizes.topics, seconds: sizes.seconds, size: sizes.payload }, 'done', (sizes.seconds + 30) * 1000);
      const sent = done.sent - sentBefore;
      const skipped = done.skipped - skippedBefore;
      sentBefore = done.sent;
      skippedBefore = done.skipped;
      const expected = sent * sizes.subsPerTopic;
      // Drain: until everything arrived, or nothing more arrives for 3 s (a process starved that long on a loaded
      // machine is not a loss), bounded by 15 s.
      let got = (await deliveries(subs)).deliveries - d0;
      for (let i = 0, still = 0; i < 150 && got < expected && still < 30; i++) {
        await sleep(100);
        const now = (await deliveries(subs)).deliveries - d0;
        still = now === got ? still + 1 : 0;
        got = now;
      }
      const wallUs = (performance.now() - t0) * 1000;
      const bUs = cpuUs(broker.pid) - b0;
      const rUs = [...redis.servers].map(([port, pid]) => [port, cpuUs(pid) - r0.get(port)!] as const);
      const c = await deliveries(subs);
      const step: Step = {
        rate,
        sent,
        skipped,
        expected,
        delivered: got,
        lossless: skipped === 0 && got === expected && c.closed === 0,
        closedSubs: c.closed,
        brokerCpuPercent: round((100 * bUs) / wallUs),
        brokerCpuUsPerMsg: round(bUs / Math.max(1, sent)),
        redisCpuPercent: Object.fromEntries(rUs.map(([port, us]) => [String(port), round((100 * us) / wallUs)])),
        redisCpuUsPerMsg: round(rUs.reduce((a, [, us]) => a + us, 0) / Math.max(1, sent)),
        load: load(),
      };
      steps.push(step);
      console.log(`${config} ${rate}/s: sent ${sent} (skipped ${skipped}), delivered ${got}/${expected}, broker ${step.brokerCpuPercent}% (${step.brokerCpuUsPerMsg} µs/msg), redis ${JSON.stringify(step.redisCpuPercent)}% (${step.redisCpuUsPerMsg} µs/msg), load ${step.load}`);
      if (!step.lossless) break;
    }
    const best = [...steps].reverse().find((s) => s.lossless);
    return { config, label: LABEL[config], topicsPerMaster: perMaster, bestLossless: best?.rate ?? 0, best, steps };
  } finally {
    subs.close();
    pubs.close();
    await broker?.stop();
    await redis.stop();
  }
}

async function main(): Promise<void> {
  const results = [];
  for (const config of configs) results.push(await run(config));
  const lines = [
    `### One node on a Redis Cluster: ${sizes.topics} topics, ${sizes.subsPerTopic} subscribers each, one publisher per topic (no ack), ${sizes.payload}-byte payload, steps of ${sizes.seconds} s rising ×${sizes.factor}`,
    '',
    '| configuration | topics per master | msg/s without loss | deliveries/s | broker CPU % (µs/msg) | redis-server CPU % each (µs/msg, all) | load average (1/5/15 min) |',
    '|---|---|---|---|---|---|---|',
    ...results.map((r) => {
      const b = r.best;
      if (!b) return `| ${r.label} | – | none | | | | |`;
      return `| ${r.label} | ${Object.values(r.topicsPerMaster).join(' / ') || sizes.topics} | ${r.bestLossless.toLocaleString('en-US')} | ${(r.bestLossless * sizes.subsPerTopic).toLocaleString('en-US')} | ${b.brokerCpuPercent} (${b.brokerCpuUsPerMsg}) | ${Object.values(b.redisCpuPercent).join(' / ')} (${b.redisCpuUsPerMsg}) | ${b.load} |`;
    }),
  ];
  console.log('\n' + lines.join('\n'));
  const out = flags.out ?? join(HERE, 'results', 'cluster-shards.json');
  mkdirSync(join(HERE, 'results'), { recursive: true });
  writeFileSync(out, JSON.stringify({ when: new Date().toISOString(), sizes, results, table: lines }, null, 2) + '\n');
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

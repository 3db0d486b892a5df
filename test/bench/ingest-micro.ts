// Ingest cost per publish with the broker in this process and the load in a child: P publishers (raw WebSocket
// sockets) each publish to their own topic `in/<i>`, one subscriber on `in/#` counts deliveries. The broker's CPU is
// process.cpuUsage() over the window; under valgrind the window is what callgrind counts (it is switched on and off
// around it with callgrind_control), so instructions per publish are repeatable on a busy machine.
//   npm run build && npx tsx test/bench/ingest-micro.ts [--publishers 200] [--publishes 40000] [--rounds 3] [--dist dist]
//   valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes --callgrind-out-file=/tmp/cg.%p node --import tsx test/bench/ingest-micro.ts --callgrind --publishes 4000 [--warmup 20000]
//   callgrind_annotate /tmp/cg.<pid>-01 | head -40   (-01: the main thread)
//   node --expose-gc --import tsx test/bench/ingest-micro.ts --heap [--snapshot /tmp/h.heapsnapshot] [--history 0]: what the broker holds
//   … --fanout 200: fan-out instead (one publisher, 200 subscribers on its topic; figures per delivery)
import { fork } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { writeHeapSnapshot } from 'node:v8';
import type { Config } from '../../src/config.js';
import type * as BrokerModule from '../../src/broker.js';
import type * as LogModule from '../../src/log.js';
import { measureRound } from './rounds.js';
import { BenchClient, publishFrame, stampedPayload, type Target } from './wire.js';

const SOURCES = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];
const { values: flags } = parseArgs({
  options: {
    publishers: { type: 'string', default: '200' },
    publishes: { type: 'string', default: '40000' },
    rounds: { type: 'string', default: '3' },
    /** Publishes of the unmeasured first round (default: as many as a round, at most 20,000). */
    warmup: { type: 'string' },
    callgrind: { type: 'boolean', default: false },
    /** Fan-out instead of ingest: one publisher to `fan`, this many subscribers on it. */
    fanout: { type: 'string', default: '0' },
    /** The build to measure (a copy of an older dist/ for an A/B comparison). */
    dist: { type: 'string', default: 'dist' },
    /** Messages kept per topic (`--history`); default: the broker's. */
    history: { type: 'string' },
    /** After each round: the heap used after a full GC (needs node --expose-gc); `--snapshot <file>` after the last. */
    heap: { type: 'boolean', default: false },
    snapshot: { type: 'string' },
    child: { type: 'string' },
  },
});

type ToParent = { type: 'ready' } | { type: 'done'; delivered: number; closed: number };
type ToChild = { type: 'go'; count: number };

if (flags.child) child(Number(flags.child), Number(flags.publishers), Number(flags.fanout));
else await parent();

async function parent(): Promise<void> {
  const publishers = Number(flags.publishers);
  const root = flags.dist.startsWith('/') ? pathToFileURL(flags.dist + '/') : new URL(`../../${flags.dist}/`, import.meta.url);
  const { defaults } = (await import(new URL('config.js', root).href)) as { defaults: Config };
  const { startBroker } = (await import(new URL('broker.js', root).href)) as typeof BrokerModule;
  const { createLogger } = (await import(new URL('log.js', root).href)) as typeof LogModule;
  const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', rate: 0, maxConnections: 10_000, maxConnectionsPerIp: 10_000, ...(flags.history !== undefined ? { historySize: Number(flags.history) } : {}) };
  const b = await startBroker(config, { log: createLogger('silent', false) });
  const fanout = Number(flags.fanout);
  const load = fork(fileURLToPath(import.meta.url), ['--child', String(b.port), '--publishers', String(publishers), '--fanout', String(fanout)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  const next = (type: ToParent['type']) => new Promise<ToParent>((resolve) => load.on('message', (m: ToParent) => m.type === type && resolve(m)));
  await next('ready');
  const count = Number(flags.publishes);
  // One round unmeasured first: the JIT has compiled the path before anything is counted.
  const rounds = [0, ...Array.from({ length: Number(flags.rounds) }, () => count)];
  for (let r = 0; r < rounds.length; r++) {
    const n = r === 0 ? (flags.warmup !== undefined ? Number(flags.warmup) : Math.min(count, 20_000)) : rounds[r]!;
    const measured = r > 0;
    const { result, cpuUs, ms } = await measureRound(load, () => next('done') as Promise<Extract<ToParent, { type: 'done' }>>, n, measured && !!flags.callgrind);
    if (!measured) continue;
    if (flags.heap) {
      // What the broker holds after the round (the history above all), after a full collection: outside the CPU window.
      const gc = (globalThis as { gc?: () => void }).gc;
      if (!gc) throw new Error('--heap needs node --expose-gc');
      gc();
      gc();
      const { heapUsed, external } = process.memoryUsage();
      console.log(JSON.stringify({ round: r, heapUsedMB: +(heapUsed / 1e6).toFixed(2), externalMB: +(external / 1e6).toFixed(2) }));
      if (flags.snapshot && r === rounds.length - 1) writeHeapSnapshot(flags.snapshot);
    }
    const per = fanout > 0 ? { cpuUsPerDelivery: +(cpuUs / result.delivered).toFixed(3) } : { cpuUsPerPublish: +(cpuUs / n).toFixed(2) };
    console.log(JSON.stringify({ round: r, publishes: n, delivered: result.delivered, subscriberClosed: result.closed > 0, ...per, wallMs: Math.round(ms) }));
  }
  load.kill();
  await b.close();
  process.exit(0);
}

function child(port: number, publishers: number, fanout: number): void {
  if (fanout > 0) publishers = 1;
  const target: Target = { proto: 'sb', host: '127.0.0.1', port };
  let delivered = 0;
  let closed = 0;
  let want = 0;
  let ready = 0;
  const pubs: BenchClient[] = [];
  const payload = stampedPayload(64);
  const frames = Array.from({ length: publishers }, (_, i) => publishFrame('sb', payload, fanout > 0 ? 'fan' : `in/${i}`));
  const subscribers = Math.max(1, fanout);
  const onReady = () => {
    if (++ready === publishers + subscribers) process.send!({ type: 'ready' } satisfies ToParent);
  };
  for (let k = 0; k < subscribers; k++) {
    new BenchClient(target, {
      role: 'sub',
      topic: fanout > 0 ? 'fan' : 'in/#',
      localAddress: SOURCES[k % SOURCES.length],
      onReady,
      onDeliveries: (n) => {
        delivered += n;
        if (want > 0 && delivered >= want) {
          want = 0;
          process.send!({ type: 'done', delivered, closed } satisfies ToParent);
          delivered = 0;
        }
      },
      onClose: () => void closed++,
    });
  }
  for (let i = 0; i < publishers; i++) pubs.push(new BenchClient(target, { role: 'pub', localAddress: SOURCES[i % SOURCES.length], onReady, onClose: () => void closed++ }));
  process.on('message', (m: ToChild) => {
    want = m.count * subscribers;
    let sent = 0;
    // Paced: one frame per publisher per tick, so the broker reads about one frame per socket read, as at 100 msg/s each.
    const tick = () => {
      for (let i = 0; i < publishers && sent < m.count; i++, sent++) pubs[i]!.send(frames[i]!);
      if (sent < m.count) setTimeout(tick, 1);
    };
    tick();
  });
}

// What the publisher's node pays per publish on a cluster (issue 20's node A), with that node in this process and
// everything else in a child: a redis-server of its own, node B (in the child) with a subscriber of the topic, and one
// raw WebSocket publisher on this node writing `--per-read` frames at a time (the three-node bench's publisher writes
// ~4 per 2 ms). This node's CPU is process.cpuUsage() over the window; under valgrind the window is what callgrind
// counts (switched on and off with callgrind_control), so instructions per publish are steadier than CPU time on a busy machine (±4 % between runs of one build)
// (they leave out the kernel: count system calls with `strace -c -f -p <pid>` if they matter).
//   npm run build && npx tsx test/bench/publisher-micro.ts [--publishes 20000] [--rounds 3] [--per-read 4] [--lockstep] [--dist dist]
//   valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes --callgrind-out-file=/tmp/cg.%p node --import tsx test/bench/publisher-micro.ts --callgrind --publishes 4000
//   callgrind_annotate /tmp/cg.<pid>-01 | head -40   (-01: the main thread)
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Config } from '../../src/config.js';
import type * as BrokerModule from '../../src/broker.js';
import type * as LogModule from '../../src/log.js';
import { TestRedis } from '../cluster/redis.js';
import { measureRound } from './rounds.js';
import { BenchClient, publishFrame, stampedPayload, type Target } from './wire.js';

const { values: flags } = parseArgs({
  options: {
    publishes: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    'per-read': { type: 'string', default: '4' },
    /** The next frames only once node B delivered the last ones: every call to Redis holds exactly `--per-read` (repeatable counts). */
    lockstep: { type: 'boolean', default: false },
    callgrind: { type: 'boolean', default: false },
    /** The build to measure (a copy of an older dist/ for an A/B comparison). */
    dist: { type: 'string', default: 'dist' },
    child: { type: 'string' },
    redis: { type: 'string' },
  },
});

type ToParent = { type: 'ready' } | { type: 'done'; delivered: number };
type ToChild = { type: 'go'; count: number };

const root = new URL(`../../${flags.dist}/`, import.meta.url);
const { defaults } = (await import(new URL('config.js', root).href)) as { defaults: Config };
const { startBroker } = (await import(new URL('broker.js', root).href)) as typeof BrokerModule;
const { createLogger } = (await import(new URL('log.js', root).href)) as typeof LogModule;
const configOf = (redisUrl: string): Config => ({ ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', rate: 0, redisUrl });

if (flags.child) await child(Number(flags.child), flags.redis!, Number(flags['per-read']), flags.lockstep!);
else await parent();

async function parent(): Promise<void> {
  const redis = await TestRedis.start();
  const a = await startBroker(configOf(redis.url), { log: createLogger('silent', false) });
  const load = fork(fileURLToPath(import.meta.url), ['--child', String(a.port), '--redis', redis.url, '--per-read', flags['per-read']!, '--dist', flags.dist!, ...(flags.lockstep ? ['--lockstep'] : [])], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  const next = (type: ToParent['type']) => new Promise<ToParent>((resolve) => load.on('message', (m: ToParent) => m.type === type && resolve(m)));
  await next('ready');
  await new Promise((r) => setTimeout(r, 1000)); // node B hears the topic's channel (interest) before the first publish
  const count = Number(flags.publishes);
  // One round unmeasured first: the JIT has compiled the path before anything is counted.
  const rounds = [Math.min(count, 10_000), ...Array.from({ length: Number(flags.rounds) }, () => count)];
  for (let r = 0; r < rounds.length; r++) {
    const n = rounds[r]!;
    const measured = r > 0;
    const { result, cpuUs, ms } = await measureRound(load, () => next('done') as Promise<Extract<ToParent, { type: 'done' }>>, n, measured && !!flags.callgrind);
    if (!measured) continue;
    console.log(JSON.stringify({ round: r, publishes: n, delivered: result.delivered, cpuUsPerPublish: +(cpuUs / n).toFixed(2), wallMs: Math.round(ms) }));
  }
  load.kill();
  await a.close();
  await redis.stop();
  process.exit(0);
}

/** Node B with the subscriber, and the publisher writing to node A (the parent) `perRead` frames at a time. */
async function child(port: number, redisUrl: string, perRead: number, lockstep: boolean): Promise<void> {
  const b = await startBroker(configOf(redisUrl), { log: createLogger('silent', false) });
  let delivered = 0;
  let want = 0;
  let ready = 0;
  /** Lockstep: the next frames go when node B has delivered every one sent (`next`). */
  let next: (() => void) | undefined;
  /** Frames sent in this round. */
  let sent = 0;
  const onReady = () => {
    if (++ready === 2) process.send!({ type: 'ready' } satisfies ToParent);
  };
  new BenchClient({ proto: 'sb', host: '127.0.0.1', port: b.port }, {
    role: 'sub',
    onReady,
    onDeliveries: (n) => {
      delivered += n;
      if (next && delivered >= sent) {
        const go = next;
        next = undefined;
        setImmediate(go);
      }
      if (want > 0 && delivered >= want) {
        want = 0;
        process.send!({ type: 'done', delivered } satisfies ToParent);
        delivered = 0;
      }
    },
    onClose: (err) => console.error('subscriber closed', err?.message ?? ''),
  });
  const target: Target = { proto: 'sb', host: '127.0.0.1', port };
  const pub = new BenchClient(target, { role: 'pub', onReady, onClose: (err) => console.error('publisher closed', err?.message ?? '') });
  const frame = publishFrame('sb', stampedPayload(64));
  process.on('message', (m: ToChild) => {
    want = m.count;
    sent = 0;
    // Paced: `perRead` frames per write, one write per timer tick (2 ms), as the three-node bench's publisher does.
    const tick = () => {
      const k = Math.min(perRead, m.count - sent);
      pub.send(k === 1 ? frame : Buffer.concat(Array.from({ length: k }, () => frame)));
      sent += k;
      if (sent >= m.count) return;
      if (lockstep) next = tick;
      else setTimeout(tick, 2);
    };
    tick();
  });
  void b;
}

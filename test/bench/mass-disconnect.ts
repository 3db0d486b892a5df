// Mass disconnect: N real WebSocket clients (a child process, spread over 127.0.0.1–.4) leave at once; the
// broker runs in this process, so process.cpuUsage() is its CPU alone. Guards the cost of an actor stopping:
// it must not grow with the number of open connections (xstate scans an actor system's timers on every stop).
//   npx tsx test/bench/mass-disconnect.ts [--clients 10000]
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { defaults, type Config } from '../../src/config.js';
import { startBroker } from '../../src/broker.js';
import { openIdleSockets } from './idle-sockets.js';
import { createLogger } from '../../src/log.js';

const { values: flags } = parseArgs({ options: { clients: { type: 'string', default: '10000' }, child: { type: 'string' } } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type ToParent = { type: 'ready'; open: number } | { type: 'left' };

if (flags.child) await clients(flags.child, Number(flags.clients));
else await broker(Number(flags.clients));

async function broker(n: number): Promise<void> {
  const config: Config = {
    ...defaults,
    host: '127.0.0.1',
    port: 0,
    tcpPort: 0,
    logLevel: 'silent',
    maxConnections: n + 100,
    maxConnectionsPerIp: n + 100,
  };
  const b = await startBroker(config, { log: createLogger('silent', false) });
  const child = fork(fileURLToPath(import.meta.url), ['--child', `ws://127.0.0.1:${b.port}/ws`, '--clients', String(n)], {
    execArgv: ['--import', 'tsx'],
    stdio: 'inherit',
  });
  const next = (type: ToParent['type']) => new Promise<ToParent>((resolve) => child.once('message', (m: ToParent) => m.type === type && resolve(m)));
  const t0 = Date.now();
  const ready = await next('ready');
  const untilOpen = Date.now() + 60_000;
  while (b.hub.inspect.clientCount() < n && Date.now() < untilOpen) await sleep(20);
  console.log(`${b.hub.inspect.clientCount()} clients connected in ${((Date.now() - t0) / 1000).toFixed(1)} s (child reports ${ready.type === 'ready' ? ready.open : '?'})`);
  if (b.hub.inspect.clientCount() < n) throw new Error('not every client connected');
  await sleep(500); // settle

  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  child.send('leave');
  while (b.hub.inspect.clientCount() > 0) await sleep(5);
  const cpu = process.cpuUsage(cpu0);
  const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
  delay.disable();
  const result = {
    clients: n,
    brokerCpuS: +((cpu.user + cpu.system) / 1e6).toFixed(2),
    userS: +(cpu.user / 1e6).toFixed(2),
    systemS: +(cpu.system / 1e6).toFixed(2),
    wallS: +(wallMs / 1000).toFixed(2),
    maxEventLoopDelayMs: +(delay.max / 1e6).toFixed(0),
  };
  console.log(JSON.stringify(result));
  child.kill();
  await b.close();
  process.exit(0);
}

async function clients(url: string, n: number): Promise<void> {
  const open = await openIdleSockets(url, n);
  process.send!({ type: 'ready', open: open.length } satisfies ToParent);
  process.once('message', () => {
    // Every socket cut in one turn, as when a client host or its network goes away.
    for (const ws of open) ws.terminate();
    process.send!({ type: 'left' } satisfies ToParent);
  });
}

// What does watching the actors cost? The same publish load against a broker child process with inspection
// off, with --inspect (to a discarding bridge), with the /inspect page open, and with both; reports the broker
// process's CPU per delivery and per publish, and the ratio to "off". Not part of `npm test`.
//
//   npx tsx test/bench/inspect-cost.ts [--connections 1000] [--seconds 6] [--rounds 2]
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import WebSocket, { WebSocketServer } from 'ws';

type Mode = 'off' | 'inspect' | 'page' | 'inspect+page';
interface Mark {
  cpuMs: number;
  delivered: number;
  published: number;
}

if (process.argv.includes('--child')) await child();
else await main();

/** The broker under test: reports its own CPU and counters when asked. */
async function child(): Promise<void> {
  const { startBroker } = await import('../../src/broker.js');
  const { defaults } = await import('../../src/config.js');
  const { createLogger } = await import('../../src/log.js');
  const inspect = process.env.BENCH_INSPECT_URL || undefined;
  const config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', inspect, maxConnections: 100_000, maxConnectionsPerIp: 100_000, rate: 0 };
  const broker = await startBroker(config, { log: createLogger('silent', false) });
  process.on('message', (msg: string) => {
    if (msg === 'mark') {
      const cpu = process.cpuUsage();
      const mark: Mark = { cpuMs: (cpu.user + cpu.system) / 1000, delivered: broker.hub.stats.delivered, published: broker.hub.stats.published };
      process.send!({ mark });
    } else if (msg === 'stop') {
      void broker.close().then(() => process.exit(0));
    }
  });
  process.send!({ port: broker.port });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { connections: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '6' }, rounds: { type: 'string', default: '2' } } });
  const connections = Number(values.connections);
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const scenarios = [
    // Fan-out: deliveries dominate; inspection sees 2 events per publish, never one per delivery.
    { name: 'fan-out: every connection subscribes to one of 10 rooms, 20 publishers at 25 msg/s each', rooms: 10, publishers: 20, ratePerPublisher: 25 },
    // Chatty: one delivery per publish, so every delivery comes with xstate events — the worst case for inspection.
    { name: 'chatty: 200 publishers at 10 msg/s, each message to 1 subscriber', rooms: 0, publishers: 200, ratePerPublisher: 10 },
  ];
  const modes = (process.env.INSPECT_COST_MODES?.split(',') ?? ['off', 'inspect', 'page', 'inspect+page']) as Mode[];
  console.log(`inspect-cost: ${connections} connections, ${seconds} s measured per run, ${rounds} rounds, modes interleaved\n`);
  for (const sc of scenarios.filter((s) => !process.env.INSPECT_COST_SCENARIO || s.name.startsWith(process.env.INSPECT_COST_SCENARIO))) {
    const results = new Map<Mode, { perDelivery: number[]; perPublish: number[]; deliveries: number }>();
    for (let r = 0; r < rounds; r++) {
      for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
        const m = await run(mode, connections, seconds, sc);
        const entry = results.get(mode) ?? { perDelivery: [], perPublish: [], deliveries: 0 };
        entry.perDelivery.push((m.cpuMs * 1000) / m.delivered);
        entry.perPublish.push((m.cpuMs * 1000) / m.published);
        entry.deliveries = m.delivered / seconds;
        results.set(mode, entry);
      }
    }
    const base = median((results.get('off') ?? results.get(modes[0]!)!).perDelivery);
    console.log(`${sc.name}`);
    console.log('  mode           µs CPU/delivery   µs CPU/publish   deliveries/s   ratio to off');
    for (const mode of modes) {
      const e = results.get(mode)!;
      const d = median(e.perDelivery);
      console.log(`  ${mode.padEnd(14)} ${d.toFixed(2).padStart(16)} ${median(e.perPublish).toFixed(1).padStart(16)} ${Math.round(e.deliveries).toString().padStart(14)} ${(d / base).toFixed(2).padStart(13)}`);
    }
    console.log('');
  }
}

async function run(mode: Mode, connections: number, seconds: number, sc: { rooms: number; publishers: number; ratePerPublisher: number }): Promise<Mark> {
  // A bridge that discards: the relay's own cost is not the broker's.
  const bridge = mode.includes('inspect') ? new WebSocketServer({ port: 0, host: '127.0.0.1' }) : undefined;
  if (bridge) await new Promise((r) => bridge.once('listening', r));
  let bridgeMessages = 0;
  bridge?.on('connection', (ws) => ws.on('message', () => bridgeMessages++));
  const env = { ...process.env, BENCH_INSPECT_URL: bridge ? `ws://127.0.0.1:${(bridge.address() as AddressInfo).port}` : '' };
  const proc = fork(fileURLToPath(import.meta.url), ['--child'], { env, execArgv: ['--import', 'tsx', ...(process.env.INSPECT_COST_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.INSPECT_COST_PROF}`] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve) => proc.once('message', (m: { port: number }) => resolve(m.port)));
  const url = `ws://127.0.0.1:${port}/ws`;

  const clients: WebSocket[] = [];
  let received = 0;
  for (let i = 0; i < connections; i += 100) {
    const batch = Array.from({ length: Math.min(100, connections - i) }, (_, k) => {
      const n = i + k;
      const topic = sc.rooms > 0 ? `room/${n % sc.rooms}` : `own/${n}`;
      const ws = new WebSocket(`${url}?topics=${encodeURIComponent(topic)}`);
      ws.on('message', () => received++);
      return new Promise<WebSocket>((resolve, reject) => {
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    });
    clients.push(...(await Promise.all(batch)));
  }
  const viewer = mode.includes('page') ? new WebSocket(`ws://127.0.0.1:${port}/inspect/ws`) : undefined;
  let viewerBytes = 0;
  viewer?.on('message', (d: Buffer) => (viewerBytes += d.length));
  if (viewer) await new Promise((r) => viewer.once('open', r));

  // Publishers send in 50 ms ticks at the configured rate.
  const perTick = sc.ratePerPublisher / 20;
  let owed = 0;
  let seq = 0;
  const publishers = clients.slice(0, sc.publishers);
  const timer = setInterval(() => {
    owed += perTick;
    while (owed >= 1) {
      owed--;
      publishers.forEach((ws, p) => {
        const topic = sc.rooms > 0 ? `room/${p % sc.rooms}` : `own/${(p + 1) % connections}`;
        ws.send(JSON.stringify({ op: 'pub', topic, data: { seq: seq++, text: 'hello from the inspect-cost bench' } }));
      });
    }
  }, 50);

  const mark = () =>
    new Promise<Mark>((resolve) => {
      proc.once('message', (m: { mark: Mark }) => resolve(m.mark));
      proc.send('mark');
    });
  await sleep(1500); // warm-up: JIT, inspector connection, first page snapshot
  const a = await mark();
  await sleep(seconds * 1000);
  const b = await mark();
  clearInterval(timer);

  viewer?.close();
  for (const ws of clients) ws.terminate();
  proc.send('stop');
  await new Promise((r) => proc.once('exit', r));
  bridge?.close();
  const result = { cpuMs: b.cpuMs - a.cpuMs, delivered: b.delivered - a.delivered, published: b.published - a.published };
  const extra = [bridge ? `bridge got ${bridgeMessages} events` : '', viewer ? `page got ${(viewerBytes / 1024).toFixed(0)} KiB` : ''].filter(Boolean).join(', ');
  console.log(`  ran ${mode.padEnd(13)} cpu ${result.cpuMs.toFixed(0)} ms, ${result.published} publishes, ${result.delivered} deliveries, clients got ${received}${extra ? `; ${extra}` : ''}`);
  return result;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

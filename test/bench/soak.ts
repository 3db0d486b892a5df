// Soak: N clients connect, subscribe, publish, disconnect abruptly and reconnect, for a configured time, against
// one in-process broker. A few observers stay connected the whole time and must receive every acknowledged message.
// At the end: connection actors alive vs sockets open (must match), RSS start vs end, messages lost (must be 0).
//   npm run soak                               50 clients, 60 s
//   npm run soak -- --clients 200 --duration 300
// Writes test/bench/results/soak.json and prints a summary; exits 1 when an invariant fails.
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { defaults, type Config } from '../../src/config.js';
import { startBroker } from '../../src/broker.js';
import { createLogger } from '../../src/log.js';

const { values: flags } = parseArgs({
  options: {
    clients: { type: 'string', default: '50' },
    duration: { type: 'string', default: '60' },
    observers: { type: 'string', default: '3' },
    topics: { type: 'string', default: '8' },
    'publish-ms': { type: 'string', default: '50' },
    'life-ms': { type: 'string', default: '3000' },
  },
});
const CLIENTS = Number(flags.clients);
const DURATION_MS = Number(flags.duration) * 1000;
const OBSERVERS = Number(flags.observers);
const TOPICS = Number(flags.topics);
const PUBLISH_MS = Number(flags['publish-ms']);
const LIFE_MS = Number(flags['life-ms']);

const mib = (bytes: number) => +(bytes / 2 ** 20).toFixed(1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gc = (globalThis as { gc?: () => void }).gc;
/** RSS and V8 heap in use, after a full collection when node runs with --expose-gc (npm run soak does). */
function memory(): { rss: number; heap: number } {
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'warn', maxConnectionsPerIp: 100_000 };
const broker = await startBroker(config, { log: createLogger('warn', false) });
const url = `ws://127.0.0.1:${broker.port}/ws`;

// Every connection actor that has not finished, as the actor tree holds them (each runs in its own actor system;
// leaks show up here even when the hub has forgotten the connection).
const connectionActors = () => [...broker.actors.actors()].filter((a) => a !== broker.supervisor).length;

const acked = new Map<string, Set<number>>(); // topic → seqs acknowledged to some publisher
const stats = { sessions: 0, abrupt: 0, published: 0, acked: 0, refusedUpgrades: 0, orderViolations: 0 };

function open(path: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}${path}`);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', () => reject(new Error('upgrade refused')));
    ws.once('error', reject);
  });
}

interface Observer {
  ws: WebSocket;
  got: Map<string, Set<number>>;
}

async function observer(): Promise<Observer> {
  const ws = await open('/soak/%23');
  const got = new Map<string, Set<number>>();
  const last = new Map<string, number>();
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    if (f.op !== 'msg') return;
    if ((last.get(f.topic) ?? 0) >= f.seq) stats.orderViolations++;
    last.set(f.topic, f.seq);
    let s = got.get(f.topic);
    if (!s) got.set(f.topic, (s = new Set()));
    s.add(f.seq);
  });
  return { ws, got };
}

let running = true;

/** One client slot: connect, subscribe, publish now and then, vanish abruptly, come back — until the end. */
async function churn(k: number): Promise<void> {
  while (running) {
    let ws: WebSocket;
    try {
      ws = await open(`/soak/t${k % TOPICS}`);
    } catch {
      stats.refusedUpgrades++;
      await sleep(100);
      continue;
    }
    stats.sessions++;
    const pending = new Map<string, string>();
    const last = new Map<string, number>();
    ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      if (f.op === 'msg') {
        if ((last.get(f.topic) ?? 0) >= f.seq) stats.orderViolations++;
        last.set(f.topic, f.seq);
      } else if (f.op === 'ack' && pending.has(f.id)) {
        const topic = pending.get(f.id)!;
        pending.delete(f.id);
        let s = acked.get(topic);
        if (!s) acked.set(topic, (s = new Set()));
        s.add(f.seq);
        stats.acked++;
      }
    });
    ws.on('error', () => {});
    ws.send(JSON.stringify({ op: 'sub', topic: `soak/t${(k + 1) % TOPICS}` }));
    const lifeEnds = Date.now() + LIFE_MS * (0.5 + Math.random());
    for (let i = 0; running && Date.now() < lifeEnds && ws.readyState === WebSocket.OPEN; i++) {
      const topic = `soak/t${(k + i) % TOPICS}`;
      const id = `${k}-${stats.sessions}-${i}`;
      pending.set(id, topic);
      ws.send(JSON.stringify({ op: 'pub', topic, data: { k, i }, id }));
      stats.published++;
      await sleep(PUBLISH_MS * (0.5 + Math.random()));
    }
    if (!running) {
      ws.close();
      return;
    }
    ws.terminate(); // abrupt: no close handshake
    stats.abrupt++;
  }
}

const memStart = memory();
const started = Date.now();
const observers = await Promise.all(Array.from({ length: OBSERVERS }, observer));
const slots = Array.from({ length: CLIENTS }, (_, k) => churn(k));
console.log(`soak: ${CLIENTS} churning clients, ${OBSERVERS} observers, ${DURATION_MS / 1000} s…`);
const progress = setInterval(() => {
  console.log(
    `  t=${Math.round((Date.now() - started) / 1000)}s sessions=${stats.sessions} published=${stats.published} ` +
      `actors=${connectionActors()} registry=${broker.hub.inspect.clientCount()} slots=${broker.admission!.size} rss=${(process.memoryUsage().rss / 2 ** 20).toFixed(0)}MiB`,
  );
}, 10_000);
await sleep(DURATION_MS);
running = false;
await Promise.all(slots);
clearInterval(progress);
// Let the last acks and messages land, then compare while the observers are still connected.
await sleep(1000);
const settle = async (cond: () => boolean) => {
  for (let i = 0; i < 100 && !cond(); i++) await sleep(50);
};
await settle(() => broker.hub.inspect.clientCount() === OBSERVERS && connectionActors() === OBSERVERS);
const atEnd = { actorsAlive: connectionActors(), registry: broker.hub.inspect.clientCount(), socketsOpen: broker.admission!.size };

let lost = 0;
for (const o of observers) {
  for (const [topic, seqs] of acked) {
    const got = o.got.get(topic) ?? new Set<number>();
    for (const s of seqs) if (!got.has(s)) lost++;
  }
}
for (const o of observers) o.ws.close();
// The bookkeeping above lives in this process too: drop it so the end figures are the broker's.
acked.clear();
for (const o of observers) o.got.clear();
await settle(() => broker.hub.inspect.clientCount() === 0 && connectionActors() === 0 && broker.admission!.size === 0);
const afterClose = { actorsAlive: connectionActors(), registry: broker.hub.inspect.clientCount(), socketsOpen: broker.admission!.size };
await sleep(500);
const memEnd = memory();
await broker.close();

const result = {
  when: new Date().toISOString(),
  settings: { clients: CLIENTS, durationS: DURATION_MS / 1000, observers: OBSERVERS, topics: TOPICS, publishMs: PUBLISH_MS, lifeMs: LIFE_MS, gcExposed: gc !== undefined },
  sessions: stats.sessions,
  abruptDisconnects: stats.abrupt,
  refusedUpgrades: stats.refusedUpgrades,
  published: stats.published,
  acknowledged: stats.acked,
  messagesLostForObservers: lost,
  orderViolations: stats.orderViolations,
  atEnd,
  afterClose,
  rssMiB: { start: mib(memStart.rss), end: mib(memEnd.rss) },
  heapUsedMiB: { start: mib(memStart.heap), end: mib(memEnd.heap) },
  brokerStats: { connectionsOpened: broker.hub.stats.connectionsOpened, connectionsClosed: broker.hub.stats.connectionsClosed, crashes: broker.hub.stats.crashes, slowConsumerCloses: broker.hub.stats.slowConsumerCloses },
};
const ok = lost === 0 && stats.orderViolations === 0 && atEnd.actorsAlive === atEnd.socketsOpen && afterClose.actorsAlive === 0 && afterClose.socketsOpen === 0;
const dir = fileURLToPath(new URL('./results/', import.meta.url));
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}soak.json`, JSON.stringify({ ...result, ok }, null, 2) + '\n');
console.log(
  [
    `soak ${ok ? 'OK' : 'FAILED'}: ${result.sessions} sessions (${result.abruptDisconnects} ended abruptly) in ${result.settings.durationS} s`,
    `  published ${result.published}, acknowledged ${result.acknowledged}, lost for observers ${lost}, order violations ${stats.orderViolations}`,
    `  end (observers connected): actors alive ${atEnd.actorsAlive}, sockets open ${atEnd.socketsOpen}, registry ${atEnd.registry}`,
    `  after all closed: actors alive ${afterClose.actorsAlive}, sockets open ${afterClose.socketsOpen}`,
    `  RSS ${result.rssMiB.start} MiB → ${result.rssMiB.end} MiB, V8 heap in use ${result.heapUsedMiB.start} MiB → ${result.heapUsedMiB.end} MiB${gc ? ' (after gc)' : ''}`,
    `  written to test/bench/results/soak.json`,
  ].join('\n'),
);
process.exit(ok ? 0 : 1);

// Subscriber worker: one child process holding many bench connections. Driven over IPC by run.ts:
// {open} → opens them (bounded concurrency, rotating loopback source addresses) and answers {ready};
// {count} → {count: deliveries, lastUs, closed, latency samples}; {close} → closes and exits.
import { BenchClient, nowUs, type Target } from './wire.js';

interface OpenMsg {
  type: 'open';
  target: Target;
  count: number;
  /** The first connection of this worker decodes stamps for latency. */
  latency: boolean;
  concurrency: number;
  sources: string[];
  /** Offset into `sources` so workers spread their ports over every address. */
  offset: number;
  /** Filter to subscribe to (MQTT form; default the bench topic). */
  topic?: string;
  /** Filters to spread the connections over instead (connection i subscribes to topics[i % length]). */
  topics?: string[];
  /** Upgrade path instead of the protocol's default subscriber path (e.g. the cluster bench's ingest subscriber). */
  path?: string;
}

type Msg = OpenMsg | { type: 'count'; resetLatency?: boolean } | { type: 'close' };

const clients: BenchClient[] = [];
let latency: number[] = [];
let closed = 0;
let errors = 0;
let lastError = '';
let lastUs = 0;
let deliveries = 0;

function reply(m: object): void {
  process.send!(m);
}

async function open(m: OpenMsg): Promise<void> {
  const started = nowUs();
  let next = 0;
  let ready = 0;
  let failed = 0;
  await new Promise<void>((resolve) => {
    const launch = (): void => {
      if (next >= m.count) return;
      const i = next++;
      let settled = false;
      const settle = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        if (ok) ready++;
        else failed++;
        if (ready + failed === m.count) resolve();
        else launch();
      };
      const c = new BenchClient(m.target, {
        role: 'sub',
        topic: m.topics ? m.topics[i % m.topics.length] : m.topic,
        latency: m.latency && i === 0,
        localAddress: m.sources[(i + m.offset) % m.sources.length],
        path: m.path,
        onReady: () => settle(true),
        onDeliveries: (n) => {
          deliveries += n;
          lastUs = nowUs();
        },
        onLatency: (us) => {
          if (latency.length < 200_000) latency.push(us);
        },
        onClose: (err) => {
          closed++;
          if (err) {
            errors++;
            lastError = err.message;
          }
          settle(false);
        },
      });
      clients.push(c);
    };
    for (let k = 0; k < Math.min(m.concurrency, m.count); k++) launch();
  });
  reply({ type: 'ready', ready, failed, ms: (nowUs() - started) / 1000, lastError });
}

process.on('message', (m: Msg) => {
  if (m.type === 'open') void open(m);
  else if (m.type === 'count') {
    reply({ type: 'count', deliveries, lastUs, closed, errors, lastError, latency });
    if (m.resetLatency) latency = [];
  } else if (m.type === 'close') {
    for (const c of clients) c.socket.destroy();
    setTimeout(() => process.exit(0), 50);
  }
});
process.on('disconnect', () => process.exit(0));

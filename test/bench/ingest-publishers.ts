// Ingest publisher worker (npm run bench's ingest workload and the cluster bench): many connections, each publishing
// stamped payloads at its own fixed rate to its own topic (`in/<i>`; NATS `in.<i>`). Switchboard frames carry no
// `id` (notifications: no ack comes back); Socket.IO sends an "in" event its server broadcasts to room "in".
// {start} → connects all, answers {connected}; {go} → publishes for `seconds`, answers {done}; {count} → {count, sent}.
// Bounded in count and time.
import { BenchClient, publishFrame, stampedPayload, wsClientFrame, type Target } from './wire.js';

interface StartMsg {
  type: 'start';
  /** Publisher k connects to targets[(first + k) % targets.length]: one broker, or a cluster's nodes in turn. */
  targets: Target[];
  /** Topic numbers this worker publishes to: in/<first> … in/<first + count - 1>. */
  first: number;
  count: number;
  sources: string[];
}
interface GoMsg {
  type: 'go';
  rate: number;
  seconds: number;
  size: number;
}

const clients: BenchClient[] = [];
const topics: string[] = [];
let sent = 0;
let skipped = 0;
let closed = 0;

function reply(m: object): void {
  process.send!(m);
}

function start(m: StartMsg): void {
  let ready = 0;
  for (let k = 0; k < m.count; k++) {
    topics.push(`in/${m.first + k}`);
    clients.push(
      new BenchClient(m.targets[(m.first + k) % m.targets.length]!, {
        role: 'pub',
        localAddress: m.sources[k % m.sources.length],
        onReady: () => {
          if (++ready === m.count) reply({ type: 'connected' });
        },
        onClose: () => void closed++,
      }),
    );
  }
}

function frame(c: BenchClient, topic: string, payload: string): Buffer {
  return c.target.proto === 'sio' ? wsClientFrame(1, Buffer.from(`42["in","${payload}"]`)) : publishFrame(c.target.proto, payload, topic);
}

function go(m: GoMsg): void {
  const total = Math.round(m.rate * m.seconds);
  const due = clients.map(() => 0);
  // Each publisher's schedule is offset by a fraction of its period, so they do not all fire in the same tick.
  const offset = clients.map((_, i) => (i / clients.length) * (1000 / m.rate));
  const started = performance.now();
  const timer = setInterval(() => {
    const elapsedMs = performance.now() - started;
    clients.forEach((c, i) => {
      const want = Math.min(total, Math.max(0, Math.floor(((elapsedMs - offset[i]!) * m.rate) / 1000) + 1));
      if (want <= due[i]!) return;
      if (c.closed || c.socket.writableLength > 1024 * 1024) {
        skipped += want - due[i]!; // the server is not reading: these count as not sent
      } else {
        for (let k = due[i]!; k < want; k++) {
          c.send(frame(c, topics[i]!, stampedPayload(m.size)));
          sent++;
        }
      }
      due[i] = want;
    });
    if (due.every((d) => d >= total) || elapsedMs > (m.seconds + 5) * 1000) {
      clearInterval(timer);
      reply({ type: 'done', sent, skipped, closed });
    }
  }, 2);
}

process.on('message', (m: StartMsg | GoMsg | { type: 'count' } | { type: 'close' }) => {
  if (m.type === 'start') start(m);
  else if (m.type === 'go') go(m);
  else if (m.type === 'count') reply({ type: 'count', sent, skipped, closed });
  else if (m.type === 'close') {
    for (const c of clients) c.socket.end();
    setTimeout(() => process.exit(0), 50);
  }
});
process.on('disconnect', () => process.exit(0));

// Publisher worker: one connection publishing stamped payloads at a fixed rate for a fixed time.
// {start} → connects, answers {connected}; {go} → publishes, then answers {done, sent}. Bounded in count and time.
import { BenchClient, publishFrame, stampedPayload, type Target } from './wire.js';

interface StartMsg {
  type: 'start';
  target: Target;
}
interface GoMsg {
  type: 'go';
  rate: number;
  seconds: number;
  size: number;
  /** Publish exactly this many (ignores rate/seconds when set). */
  count?: number;
}

let client: BenchClient | undefined;

function reply(m: object): void {
  process.send!(m);
}

function publish(m: GoMsg): void {
  const c = client!;
  const proto = c.target.proto;
  if (m.count !== undefined) {
    const parts: Buffer[] = [];
    for (let i = 0; i < m.count; i++) parts.push(publishFrame(proto, stampedPayload(m.size)));
    c.send(Buffer.concat(parts));
    reply({ type: 'done', sent: m.count, skipped: 0 });
    return;
  }
  const total = Math.round(m.rate * m.seconds);
  const started = performance.now();
  let sent = 0;
  let skipped = 0;
  const timer = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000;
    const due = Math.min(total, Math.floor(m.rate * elapsed));
    if (c.socket.writableLength > 4 * 1024 * 1024) {
      // The server is not reading: do not buffer without bound; these count as not sent.
      skipped += due - sent;
      sent = due;
    } else if (due > sent) {
      const parts: Buffer[] = [];
      for (; sent < due; sent++) parts.push(publishFrame(proto, stampedPayload(m.size)));
      c.send(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    }
    if (sent >= total || elapsed > m.seconds + 5) {
      clearInterval(timer);
      reply({ type: 'done', sent: sent - skipped, skipped });
    }
  }, 2);
}

process.on('message', (m: StartMsg | GoMsg | { type: 'close' }) => {
  if (m.type === 'start') {
    client = new BenchClient(m.target, {
      role: 'pub',
      onReady: () => reply({ type: 'connected' }),
      onClose: (err) => reply({ type: 'closed', error: err?.message }),
    });
  } else if (m.type === 'go') publish(m);
  else if (m.type === 'close') {
    client?.socket.end();
    setTimeout(() => process.exit(0), 50);
  }
});
process.on('disconnect', () => process.exit(0));

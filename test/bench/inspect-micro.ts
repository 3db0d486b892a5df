// The cost of inspection without sockets: real supervisor and connection actors over in-memory wires, the
// reader fed the same JSON frames a transport would, observers toggled on the same actor tree between rounds.
// Reports CPU µs per publish (chatty: 1 delivery each) and per delivery (fan-out: 100 each). Not part of `npm test`.
//
//   npx tsx test/bench/inspect-micro.ts [--publishes 20000] [--rounds 5]
import { parseArgs } from 'node:util';
import type { Subscription } from 'xstate';
import { startBroker } from '../../src/broker.js';
import { defaults } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { openConnection } from '../../src/actors/connection.js';
import type { Wire } from '../../src/actors/mailbox.js';
import type { FrameReader } from '../../src/actors/reader.js';
import type { Outgoing } from '../../src/protocol/outgoing.js';
import { wsTextFrame } from '../../src/transports/ws/frame.js';
import { StatelyInspector } from '../../src/inspect/stately.js';
import { ActorTable } from '../../src/inspect/actors.js';

const { values } = parseArgs({ options: { publishes: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '5' } } });
const PUBLISHES = Number(values.publishes);
const ROUNDS = Number(values.rounds);
const CONNECTIONS = 1000;

class MemoryWire implements Wire {
  readonly transport = 'ws' as const;
  readonly canPing = true;
  readonly bufferedBytes = 0;
  bytes = 0;
  encode(out: Outgoing): Buffer {
    return out.bytesFor(wsTextFrame);
  }
  write(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    return true;
  }
  onDrain(): void {}
  ping(): void {}
  close(): void {}
  terminate(): void {}
}

const log = createLogger('silent', false);
const broker = await startBroker({ ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', rate: 0, maxConnectionsPerIp: 100_000, heartbeatMs: 3_600_000, idleMs: 3_600_000 }, { log }); // memory wires never pong
const readers: FrameReader[] = [];
for (let i = 0; i < CONNECTIONS; i++) {
  const { reader, actor } = openConnection(broker, new MemoryWire(), `mem:${i}`, { topics: [`own/${i}`, `room/${i % 10}`] });
  actor.start();
  readers.push(reader);
}
const turn = () => new Promise((r) => setImmediate(r));
await turn();

const stately = new StatelyInspector({ url: 'ws://127.0.0.1:9', log, actors: broker.actors }); // unreachable: events are converted, then queued (bounded)
const table = new ActorTable();
type Mode = 'off' | 'noop' | 'inspect' | 'page' | 'inspect+page';

async function measure(mode: Mode, scenario: 'chatty' | 'fan-out'): Promise<{ perPublish: number; perDelivery: number }> {
  const subs: Subscription[] = [];
  // `noop`: an observer that does nothing — what xstate's own inspection machinery costs once anyone listens.
  if (mode === 'noop') subs.push(broker.actors.inspect({ next: () => {} }));
  if (mode.includes('inspect')) subs.push(broker.actors.inspect(stately.observer));
  if (mode.includes('page')) table.attach(broker.actors);
  const publishers = scenario === 'chatty' ? 200 : 10;
  const total = scenario === 'chatty' ? PUBLISHES : PUBLISHES / 2;
  const frames = Array.from({ length: publishers }, (_, p) => {
    const topic = scenario === 'chatty' ? `own/${(p + 1) % CONNECTIONS}` : `room/${p % 10}`;
    const text = JSON.stringify({ op: 'pub', topic, data: { p, text: 'hello from inspect-micro' } });
    return { text, bytes: Buffer.byteLength(text) };
  });
  const d0 = broker.hub.stats.delivered;
  const cpu0 = process.cpuUsage();
  for (let sent = 0; sent < total; ) {
    for (let p = 0; p < publishers && sent < total; p++, sent++) readers[p]!.text(frames[p]!.text, frames[p]!.bytes);
    await turn(); // mailboxes flush once per turn, as with real sockets
  }
  const cpu = process.cpuUsage(cpu0);
  const delivered = broker.hub.stats.delivered - d0;
  for (const s of subs) s.unsubscribe();
  table.detach();
  const us = cpu.user + cpu.system;
  return { perPublish: us / total, perDelivery: us / delivered };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const modes = (process.env.INSPECT_MICRO_MODES?.split(',') ?? ['off', 'noop', 'inspect', 'page', 'inspect+page']) as Mode[];
console.log(`inspect-micro: ${CONNECTIONS} in-memory connections, ${PUBLISHES} publishes per chatty run, ${ROUNDS} rounds, median\n`);
for (const scenario of ['chatty', 'fan-out'] as const) {
  await measure('off', scenario); // warm-up
  const results = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of r % 2 ? [...modes].reverse() : modes) {
      const m = await measure(mode, scenario);
      results.get(mode)!.push(scenario === 'chatty' ? m.perPublish : m.perDelivery);
    }
  }
  const base = median(results.get('off') ?? results.get(modes[0]!)!);
  console.log(scenario === 'chatty' ? 'chatty (1 delivery per publish): µs CPU per publish' : 'fan-out (100 deliveries per publish): µs CPU per delivery');
  for (const mode of modes) {
    const v = median(results.get(mode)!);
    console.log(`  ${mode.padEnd(13)} ${v.toFixed(2).padStart(8)}   ${(v / base).toFixed(2)}×`);
  }
  console.log('');
}
console.log(`sampler: ${stately.sampler.counts.forwarded} forwarded, ${stately.sampler.counts.sampledOut} sampled out`);
stately.stop();
await broker.close();
process.exit(0);

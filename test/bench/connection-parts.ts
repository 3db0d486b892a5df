// What the parts of one connection cost in V8 heap, built N at a time without sockets: the session record (Link with
// its Mailbox, FrameReader and TokenBucket), then the connection actor online (its heartbeat-and-idle timer pending)
// in systems shared by groups (as the broker runs it) or each in a system of its own (as before issue 21). The
// socket side (net.Socket, ws) is measured with real sockets by connection-memory.ts.
//   node --expose-gc --import tsx test/bench/connection-parts.ts [--n 20000]
import { parseArgs } from 'node:util';
import { createActor, fromCallback, type AnyActorRef } from 'xstate';
import { Link } from '../../src/actors/link.js';
import { FrameReader } from '../../src/actors/reader.js';
import { TokenBucket } from '../../src/engine/bucket.js';
import { connectionMachine, ConnectionEnv, type ConnectionInput } from '../../src/actors/connection.machine.js';
import { ActorTree, type ChildEnd } from '../../src/actors/tree.js';
import type { Wire } from '../../src/actors/mailbox.js';
import type { Engine } from '../../src/engine/engine.js';
import { defaults } from '../../src/config.js';

const { values: flags } = parseArgs({ options: { n: { type: 'string', default: '20000' } } });
const N = Number(flags.n);

function heap(): number {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) g();
  return process.memoryUsage().heapUsed;
}

const wire: Wire = {
  transport: 'ws',
  canPing: true,
  bufferedBytes: 0,
  encode: () => Buffer.alloc(0),
  write: () => true,
  onDrain: () => undefined,
  ping: () => undefined,
  close: () => undefined,
  terminate: () => undefined,
};
const limits = { messages: defaults.mailboxSize, bytes: defaults.mailboxBytes };
const rate = { rate: defaults.rate, burst: defaults.rateBurst, strikes: defaults.rateStrikes, windowMs: 10_000 };
const timing = { heartbeatMs: 3_600_000, idleMs: 3_600_000, idleGraceMs: 1000, closeTimeoutMs: 1000, tokenGraceMs: 1000 };
// The supervisor admits nothing by itself: the bench sends ACCEPTED, so each actor is online with its timers armed.
const supervisor = createActor(fromCallback(() => undefined)).start();
const engine = {} as Engine<Link>;
const env = new ConnectionEnv(supervisor, engine, timing);

function links(n: number): Link[] {
  const out: Link[] = [];
  for (let i = 0; i < n; i++) {
    const link = new Link({ addr: '127.0.0.1:1', wire, mailboxLimits: limits, slowConsumer: 'close' });
    link.rate = new TokenBucket(rate, Date.now);
    (link as unknown as { reader: FrameReader }).reader = new FrameReader(link, { engine }, link.rate);
    out.push(link);
  }
  return out;
}

function input(link: Link): ConnectionInput {
  return { link, env };
}

const ignore: ChildEnd = { completed: () => undefined, failed: () => undefined };
const rows: [string, number][] = [];
const measure = (label: string, build: () => unknown): unknown => {
  const h0 = heap();
  const kept = build();
  rows.push([label, (heap() - h0) / N]);
  return kept;
};

const keep: unknown[] = [];
const base = links(N);
keep.push(measure('Link + Mailbox + FrameReader + TokenBucket', () => links(N)));
const tree = new ActorTree(supervisor);
keep.push(
  measure('connection actor online, systems shared by groups of 64 (now)', () =>
    base.map((link) => {
      const a = tree.create(connectionMachine, { id: link.id, input: input(link) }, ignore);
      a.start();
      a.send({ type: 'ACCEPTED' });
      return a;
    }),
  ),
);
const more = links(N);
keep.push(
  measure('connection actor online, a system of its own (before)', () =>
    more.map((link) => {
      const a: AnyActorRef = createActor(connectionMachine, { id: link.id, input: input(link) });
      a.start();
      a.send({ type: 'ACCEPTED' });
      return a;
    }),
  ),
);
const idle = links(N);
keep.push(
  measure('connection actor not started, shared system (no timers)', () => idle.map((link) => tree.create(connectionMachine, { id: `${link.id}-n`, input: input(link) }, ignore))),
);
console.log(`${N} of each, V8 heap per connection (after gc):`);
for (const [label, bytes] of rows) console.log(`  ${bytes.toFixed(0).padStart(6)} B  ${label}`);
process.exit(keep.length > 0 ? 0 : 1);

// The engine alone, no sockets: fan-out (one publisher, N subscribers of one topic) and ingest (N publishers, each
// to its own topic, one `in/#` subscriber) through handle(), with sessions whose mailboxes only count. Compares
// builds (--dist a --dist b, run interleaved, best of rounds): what a change to the engine's code costs per
// delivery and per publish, without the sockets, the writer and the load generator's timing.
//   npm run build && cp -r dist dist-base && … && npx tsx test/bench/engine-micro.ts --dist dist-base --dist dist
import { parseArgs } from 'node:util';
import type * as MemoryModule from '../../src/engine/memory.js';
import type { Session, SessionMailbox } from '../../src/engine/engine.js';

const { values: flags } = parseArgs({
  options: {
    dist: { type: 'string', multiple: true, default: ['dist'] },
    subscribers: { type: 'string', default: '200' },
    publishers: { type: 'string', default: '200' },
    publishes: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '7' },
  },
});

function session(id: string): Session {
  let depth = 0;
  const mailbox: SessionMailbox = {
    push: () => (depth++, true),
    capacity: 1 << 30,
    byteCapacity: 2 ** 40,
    get depth() {
      return 0;
    },
    get bytes() {
      return 0;
    },
    acceptsDirect: () => true,
    tail: undefined,
    replaceTail: () => undefined,
  };
  const s: Session = {
    id,
    name: id,
    addr: '127.0.0.1:1',
    transport: 'ws',
    mailbox,
    subscriptions: new Set(),
    presence: new Set(),
    watch: () => undefined,
    grant: undefined,
    nameFixed: false,
    rate: undefined,
    renames: undefined,
    state: 'online',
    send: () => true,
    info: () => ({ id: s.id, name: s.name, addr: s.addr, transport: s.transport }),
    publicInfo: () => ({ id: s.id, name: s.name, transport: s.transport }),
  };
  return s;
}

const options = { serverName: 'bench', version: '0', heartbeatMs: 1000, idleMs: 1000, historySize: 100, historyBytes: 64 << 20, historyTopicBytes: 1 << 20, maxTopics: 100_000, maxSubscriptions: 100, idleClose: 'none' as const, replayMaxMessages: 100, replayMaxBytes: 1 << 20 };
const data = { text: 'x'.repeat(48), n: 1 };

async function load(dist: string): Promise<typeof MemoryModule> {
  return (await import(new URL(`../../${dist}/engine/memory.js`, import.meta.url).href)) as typeof MemoryModule;
}

/** ns per delivery (fan-out) and per publish (ingest). */
function measure(mod: typeof MemoryModule, tag: string): { fanout: number; ingest: number } {
  const n = Number(flags.publishes);
  const fan = new mod.MemoryEngine(options);
  const pub = session(`p${tag}`);
  fan.join(pub, {});
  for (let i = 0; i < Number(flags.subscribers); i++) fan.join(session(`s${tag}${i}`), { topics: ['fan'] });
  const frame = { op: 'pub' as const, topic: 'fan', data, id: 1 };
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fan.handle(pub, frame);
  const fanout = Number(process.hrtime.bigint() - t0) / (n * Number(flags.subscribers));
  const ing = new mod.MemoryEngine(options);
  ing.join(session(`w${tag}`), { topics: ['in/#'] });
  const pubs = Array.from({ length: Number(flags.publishers) }, (_, i) => {
    const s = session(`q${tag}${i}`);
    ing.join(s, {});
    return [s, { op: 'pub' as const, topic: `in/${i}`, data, id: 1 }] as const;
  });
  t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const [s, f] = pubs[i % pubs.length]!;
    ing.handle(s, f);
  }
  const ingest = Number(process.hrtime.bigint() - t0) / n;
  return { fanout, ingest };
}

const builds = await Promise.all(flags.dist.map(async (d) => [d, await load(d)] as const));
const best = new Map<string, { fanout: number; ingest: number }>();
for (let r = 0; r < Number(flags.rounds); r++) {
  for (const [d, mod] of builds) {
    const m = measure(mod, `${r}`);
    if (r === 0) continue; // warm-up
    const b = best.get(d);
    best.set(d, { fanout: Math.min(b?.fanout ?? Infinity, m.fanout), ingest: Math.min(b?.ingest ?? Infinity, m.ingest) });
  }
}
for (const [d, m] of best) console.log(JSON.stringify({ dist: d, nsPerDelivery: +m.fanout.toFixed(1), nsPerPublish: +m.ingest.toFixed(0) }));

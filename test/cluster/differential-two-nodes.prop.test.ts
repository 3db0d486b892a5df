// Differential, two nodes: the same random client operations against an in-memory broker and a TWO-node Redis
// cluster (two nodes on one Redis; each logical client connected to node A or B, drawn per client), with the
// cross-client operations: pub/sub/unsub, sub with presence, send (by name, by id, to nobody), rename, who (with and
// without topic). Every answer and, per client, what it received (msgs, directs, presence events) are compared.
//
// Normalised (docs/cluster.md, docs/protocol.md): epochs and lives (labels per side), client ids (the logical client),
// `delivered` (counts only the publisher's node on a cluster: left out), presence coalescing (timing-dependent: both
// sides' event sequences are coalesced fully per watcher and filter before comparing), and the order between
// different kinds of frames (msgs, directs, events are compared as three sequences per client; msgs keep their order).
// `who` is asked without `limit` (a page's content follows the id order, which differs between the deployments).
// Between operations every client of both sides answers a ping: the barrier that proves everything published
// anywhere before it is queued for that client (docs/cluster.md, Request order).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient, type Frame } from '../helpers/client.js';
import { redisCli, requireRedis, startNode, TestRedis } from './redis.js';

const run = requireRedis('differential-two-nodes.prop.test.ts', true);

const SLOTS = 4;
const TOPICS = ['a', 'a/b', 'b/x', 'c/x'];
const FILTERS = [...TOPICS, 'a/+', 'a/#', '#', '+/x'];
const NAMES = ['n1', 'n2', 'p0', 'p1', 'p3', 'c77', ' bad', 'N1', '__proto__', 'constructor', 'toString', 'hasOwnProperty', '\u00e9', 'e\u0301', 'x'.repeat(64), 'x'.repeat(65), '\u{1F600}'.repeat(33), '\u{1F600}'.repeat(64), 'C77', 'c0', 'c', 'c1x'];
const LIMITS = { historySize: 3, mailboxSize: 50, ...(JSON.parse(process.env.DIFF_LIMITS ?? '{}') as object) };

export type Op =
  | { op: 'pub'; c: number; topic: string; echo: boolean }
  | { op: 'sub'; c: number; filter: string; presence: boolean }
  | { op: 'unsub'; c: number; filter: string }
  | { op: 'who'; c: number; topic?: string }
  | { op: 'send'; c: number; to: number; by: 'name' | 'id' | 'nobody' | 'nobodyId' | 'fixed' | 'pastId'; name: string }
  | { op: 'reconnect'; c: number }
  | { op: 'rename'; c: number; name: string };

const c = fc.nat(SLOTS - 1);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('pub' as const), c, topic: fc.constantFrom(...TOPICS), echo: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('sub' as const), c, filter: fc.constantFrom(...FILTERS), presence: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('unsub' as const), c, filter: fc.constantFrom(...FILTERS) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('who' as const), c, topic: fc.option(fc.constantFrom(...FILTERS), { nil: undefined }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('send' as const), c, to: c, by: fc.constantFrom('name' as const, 'name' as const, 'id' as const, 'id' as const, 'nobody' as const, 'nobodyId' as const, 'fixed' as const, 'fixed' as const, 'pastId' as const), name: fc.constantFrom(...NAMES) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reconnect' as const), c }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('rename' as const), c, name: fc.constantFrom(...NAMES) }) },
);

type Ev = { event: string; who: string; name: string; old?: string };

/** The fullest coalescing of docs/protocol.md (Presence) over one watcher's events of one filter. */
export function coalesce(events: Ev[]): Ev[] {
  const out: Ev[] = [];
  for (const e of events) {
    const prev = out[out.length - 1];
    if (prev && prev.who === e.who) {
      if (prev.event === 'rename' && e.event === 'rename') {
        out.pop();
        if (prev.old !== e.name) out.push({ ...e, old: prev.old });
        continue;
      }
      if (prev.event === 'join' && e.event === 'rename') {
        out[out.length - 1] = { ...prev, name: e.name };
        continue;
      }
      if (prev.event === 'join' && (e.event === 'leave' || e.event === 'timeout')) {
        out.pop();
        continue;
      }
    }
    out.push(e);
  }
  return out;
}

/** guest-<n> names differ between deployments (a counter per process). */
const g = (name: string): string => name.replace(/^guest-\d+$/, 'guest');

class Side {
  clients: TestClient[] = [];
  private labels = new Map<string, string>();
  /** client id -> logical client */
  readonly slotOf = new Map<string, string>();

  constructor(
    readonly name: string,
    readonly urls: string[],
  ) {}

  async connect(): Promise<void> {
    for (let i = 0; i < SLOTS; i++) {
      const cl = await TestClient.connect(`${this.urls[i]}?name=p${i}`);
      this.slotOf.set(cl.hello.client.id, `P${i}`);
      this.clients.push(cl);
    }
  }

  close(): void {
    for (const cl of this.clients) cl.close();
  }

  label(e: unknown): unknown {
    if (typeof e !== 'string') return e;
    let l = this.labels.get(e);
    if (!l) this.labels.set(e, (l = `E${this.labels.size + 1}`));
    return l;
  }

  frame(op: Op, id: string): Record<string, unknown> {
    switch (op.op) {
      case 'pub':
        return { op: 'pub', id, topic: op.topic, data: id, ...(!op.echo && { echo: false }) };
      case 'sub':
        return { op: 'sub', id, topic: op.filter, ...(op.presence && { presence: true }) };
      case 'unsub':
        return { op: 'unsub', id, topic: op.filter };
      case 'who':
        return { op: 'who', id, ...(op.topic && { topic: op.topic }) };
      case 'rename':
        return { op: 'rename', id, name: op.name };
      case 'reconnect':
        return {};
      case 'send': {
        const target = this.clients[op.to]!;
        const to = { name: this.currentName(op.to), id: target.hello.client.id as string, nobody: 'nobody', nobodyId: 'c987654321', fixed: op.name, pastId: (this.past[op.to]!.at(-1) ?? target).hello.client.id as string }[op.by];
        return { op: 'send', id, to, data: id };
      }
    }
  }

  /** The name logical client `i` holds now (its last acked rename, else its connect name). */
  names: string[] = Array.from({ length: SLOTS }, (_, i) => `p${i}`);
  currentName(i: number): string {
    return this.names[i]!;
  }

  /** Frames of the logical clients' earlier connections. */
  past: TestClient[][] = Array.from({ length: SLOTS }, () => []);

  async apply(op: Op, n: number): Promise<unknown> {
    if (op.op === 'reconnect') {
      const old = this.clients[op.c]!;
      const others = this.clients.filter((x) => x !== old);
      // What was published for it before it leaves reaches it first (on a cluster, through the bus: a barrier).
      await old.quiet(() => false);
      old.close();
      await old.closed;
      // Gone everywhere: no other client's who lists it any more.
      for (;;) {
        const r = await others[0]!.request({ op: 'who' }, 5000);
        if (!(r.clients as { id: string }[]).some((x) => x.id === old.hello.client.id)) break;
        await new Promise((res) => setTimeout(res, 5));
      }
      const cl = await TestClient.connect(`${this.urls[op.c]}?name=p${op.c}`);
      this.slotOf.set(cl.hello.client.id, `P${op.c}`);
      this.past[op.c]!.push(old);
      this.clients[op.c] = cl;
      const name = cl.hello.client.name as string;
      this.names[op.c] = name;
      return { op: 'hello', name: name.replace(/^guest-\d+$/, 'guest') };
    }
    const cl = this.clients[op.c]!;
    const reply = await cl.request(this.frame(op, `o${n}`), 5000);
    const out: Record<string, unknown> = { op: reply.op };
    if (reply.op === 'error') {
      out.code = reply.code;
      return out;
    }
    out.fields = Object.keys(reply).filter((k) => k !== 'delivered').sort();
    if (op.op === 'pub') {
      Object.assign(out, { seq: reply.seq, epoch: this.label(reply.epoch) });
    } else if (op.op === 'sub') {
      out.life = this.label(reply.life);
    } else if (op.op === 'rename') {
      out.name = reply.name;
      this.names[op.c] = reply.name;
    } else if (op.op === 'who') {
      out.clients = (reply.clients as { id: string; name: string; state: string; transport: string }[]).map((x) => `${this.slotOf.get(x.id) ?? x.id}:${g(x.name)}:${x.state}:${x.transport}`).sort();
      out.next = reply.next !== undefined;
    }
    return out;
  }

  async barrier(): Promise<void> {
    await Promise.all(this.clients.map((cl) => cl.quiet(() => false)));
  }

  received(): unknown[] {
    return this.clients.map((now, i) => {
      const cl = { all: [...this.past[i]!.flatMap((x) => x.all), ...now.all] };
      const msgs = cl.all.filter((f) => f.op === 'msg').map((f) => ({ keys: Object.keys(f).sort().join(), topic: f.topic, seq: f.seq, epoch: this.label(f.epoch), data: f.data, from: f.from ? `${this.slotOf.get(f.from.id)}:${g(f.from.name)}` : undefined }));
      const directs = cl.all.filter((f) => f.op === 'direct').map((f) => ({ keys: Object.keys(f).sort().join(), data: f.data, from: `${this.slotOf.get(f.from.id)}:${g(f.from.name)}` }));
      const byFilter: Record<string, Ev[]> = {};
      for (const f of cl.all.filter((x: Frame) => x.op === 'event')) {
        (byFilter[f.topic] ??= []).push({ event: f.event, who: this.slotOf.get(f.client.id) ?? f.client.id, name: g(f.client.name), ...(f.old !== undefined && { old: g(f.old) }), ...{ keys: Object.keys(f).sort().join(), ckeys: Object.keys(f.client).sort().join() } });
      }
      const events = Object.fromEntries(Object.entries(byFilter).sort().map(([t, evs]) => [t, process.env.DIFF_RAW ? evs : coalesce(evs)]));
      return { msgs, directs, events };
    });
  }
}

async function compare(ops: Op[], memory: Side, cluster: Side, nodeOf: string): Promise<void> {
  const log: string[] = [];
  for (let n = 0; n < ops.length; n++) {
    const op = ops[n]!;
    const a = await memory.apply(op, n);
    const b = await cluster.apply(op, n);
    log.push(`${n} ${JSON.stringify(op)} -> ${JSON.stringify(a)}`);
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      throw new Error(`op ${n} differs (nodes ${nodeOf})\n${log.slice(-15).join('\n')}\nmemory:  ${JSON.stringify(a)}\ncluster: ${JSON.stringify(b)}`);
    }
    if (!process.env.DIFF_NOBARRIER) await Promise.all([memory.barrier(), cluster.barrier()]);
    if (process.env.DIFF_STEP) {
      const [ra, rb] = [memory.received(), cluster.received()];
      if (JSON.stringify(ra) !== JSON.stringify(rb)) {
        throw new Error(`after op ${n} received differs (nodes ${nodeOf})\n${log.slice(-15).join('\n')}\nmemory:  ${JSON.stringify(ra)}\ncluster: ${JSON.stringify(rb)}`);
      }
    }
  }
  await Promise.all([memory.barrier(), cluster.barrier()]);
  const [ra, rb] = [memory.received(), cluster.received()];
  for (let i = 0; i < SLOTS; i++) {
    for (const k of ['msgs', 'directs', 'events'] as const) {
      const [x, y] = [JSON.stringify((ra[i] as Record<string, unknown>)[k]), JSON.stringify((rb[i] as Record<string, unknown>)[k])];
      if (x !== y) throw new Error(`P${i} received ${k} differ (nodes ${nodeOf})\n${log.join('\n')}\nmemory:  ${x}\ncluster: ${y}`);
    }
  }
  expect(rb).toEqual(ra);
}

describe.runIf(run)('differential: in-memory broker vs two-node Redis cluster', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('answer the same random cross-client operations the same way, and deliver the same', async () => {
    const stats = { runs: 0, ops: 0 };
    const tally: Record<string, number> = {};
    // A fixed seed in the suite (seeds 1-12 explored green with 25 runs each, also with DIFF_RAW=1 DIFF_STEP=1);
    // DIFF_SEED / DIFF_RUNS explore more. DIFF_NOBARRIER=1 drops the per-op barrier (then the cluster differs by
    // timing only: an acked sub's or rename's presence event, travelling the bus, reaches a watcher added after it).
    const seed = Number(process.env.DIFF_SEED ?? 7);
    console.log(`two-node differential seed ${seed}`);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.boolean(), { minLength: SLOTS, maxLength: SLOTS }), fc.array(opArb, { minLength: 30, maxLength: 60 }), async (onB, ops) => {
        await redisCli(redis.port, 'FLUSHALL');
        const broker: TestBroker = await startTestBroker({ ...LIMITS });
        const nodeA: TestBroker = await startNode(redis, { ...LIMITS });
        const nodeB: TestBroker = await startNode(redis, { ...LIMITS });
        const memory = new Side('memory', Array.from({ length: SLOTS }, () => broker.url));
        const cluster = new Side('cluster', onB.map((b) => (b ? nodeB.url : nodeA.url)));
        try {
          await memory.connect();
          await cluster.connect();
          await compare(ops, memory, cluster, onB.map((b) => (b ? 'B' : 'A')).join(''));
          stats.runs++;
          stats.ops += ops.length;
          for (const cl of memory.clients) for (const f of cl.all) tally[f.op === 'event' ? `event:${f.event}` : f.op === 'error' ? `error:${f.code}` : f.op] = (tally[f.op === 'event' ? `event:${f.event}` : f.op === 'error' ? `error:${f.code}` : f.op] ?? 0) + 1;
        } finally {
          memory.close();
          cluster.close();
          await broker.close();
          await nodeA.close();
          await nodeB.close();
        }
      }),
      { seed, numRuns: Number(process.env.DIFF_RUNS ?? 10), interruptAfterTimeLimit: 60_000, markInterruptAsFailure: false },
    );
    console.log(`two-node differential: ${stats.runs} runs, ${stats.ops} operations compared`, JSON.stringify(tally));
  }, 120_000);
});

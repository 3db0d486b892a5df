// Differential: the same random client operations (pub with and without keys, sub with and without positions on
// concrete and wildcard filters, unsub, who) against an in-memory broker and a one-node Redis cluster with the same
// limits, answers compared after normalising what may differ (epoch and life strings, client ids). docs/cluster.md
// lists what differs on a cluster: `--max-topics` and `--history-bytes` are not applied there, so they stay out of
// reach here (defaults, a handful of small topics).
import fc from 'fast-check';
import { filterMatches } from '../../src/protocol/topic.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient, type Frame } from '../helpers/client.js';
import { redisCli, requireRedis, startNode, TestRedis } from './redis.js';

const run = requireRedis('differential.prop.test.ts', true);

const TOPICS = ['a', 'a/b', 'a/c', 'b/x', 'c/x', '/x', 'a/', '__proto__', 'é/x', 'a/b/c'];
const FILTERS = [...TOPICS, 'a/+', 'a/#', '#', '+/x', 'b/#', '+/+', '+', '/#'];
const SLOTS = 3;
/** The same limits on both: a short history (trims soon) and a small replay budget (mailboxSize / 2). */
export const LIMITS = { historySize: 3, mailboxSize: 10, ...(JSON.parse(process.env.DIFF_LIMITS ?? '{}') as object) };

export type PosKind = 'exact' | 'stale' | 'beyond' | 'bogusEpoch' | 'noEpoch' | 'zero';
export type LifeKind = 'none' | 'own' | 'bogus';
export type Op =
  | { op: 'pub'; c: number; topic: string; key?: string; echo: boolean; data: unknown }
  | { op: 'sub'; c: number; filter: string; since?: { life: LifeKind; pos: { topic: string; ack: number; kind: PosKind }[]; zero: boolean } }
  | { op: 'unsub'; c: number; filter: string }
  | { op: 'who'; c: number; topic?: string; limit?: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('pub' as const), c: fc.nat(SLOTS - 1), topic: fc.constantFrom(...TOPICS), key: fc.option(fc.constantFrom('k1', 'k2', 'k3'), { nil: undefined }), echo: fc.boolean(), data: fc.oneof(fc.constant(null), fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.parse(JSON.stringify(v)) as unknown)) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('sub' as const),
      c: fc.nat(SLOTS - 1),
      filter: fc.constantFrom(...FILTERS),
      since: fc.option(
        fc.record({
          life: fc.constantFrom<LifeKind>('none', 'own', 'own', 'bogus'),
          zero: fc.boolean(),
          pos: fc.array(fc.record({ topic: fc.constantFrom(...TOPICS), ack: fc.nat(200), kind: fc.constantFrom<PosKind>('exact', 'exact', 'stale', 'beyond', 'bogusEpoch', 'noEpoch', 'zero') }), { maxLength: 3 }),
        }),
        { nil: undefined, freq: 3 },
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unsub' as const), c: fc.nat(SLOTS - 1), filter: fc.constantFrom(...FILTERS) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('who' as const), c: fc.nat(SLOTS - 1), topic: fc.option(fc.constantFrom(...FILTERS), { nil: undefined }), limit: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }) }) },
);

/** One deployment under test, with its own normalisation of epoch and life strings. */
export class Side {
  clients: TestClient[] = [];
  /** Pub acks in op order: [topic, seq, epoch] (or undefined for an error). */
  acks: ({ topic: string; seq: number; epoch: string } | undefined)[] = [];
  lifeOf: (string | undefined)[] = [];
  private labels = new Map<string, string>();
  private names = new Map<string, string>();

  constructor(
    readonly name: string,
    readonly url: string,
  ) {}

  async connect(): Promise<void> {
    for (let i = 0; i < SLOTS; i++) {
      const c = await TestClient.connect(`${this.url}?name=p${i}`);
      this.names.set(c.hello.client.id, `p${i}`);
      this.clients.push(c);
    }
  }

  close(): void {
    for (const c of this.clients) c.close();
  }

  epochLabel(e: unknown): unknown {
    if (typeof e !== 'string') return e;
    if (e.startsWith('bogus')) return e;
    let l = this.labels.get(e);
    if (!l) this.labels.set(e, (l = `E${this.labels.size + 1}`));
    return l;
  }

  private msg(f: Frame): unknown {
    return { keys: Object.keys(f).sort().join(), topic: f.topic, seq: f.seq, epoch: this.epochLabel(f.epoch), data: f.data, from: f.from ? this.names.get(f.from.id) : undefined };
  }

  /** The frame for `op` on this side (positions from this side's own earlier acks). */
  frame(op: Op, id: string): Record<string, unknown> {
    switch (op.op) {
      case 'pub':
        return { op: 'pub', id, topic: op.topic, data: op.data === null ? id : op.data, ...(op.key && { key: op.key }), ...(!op.echo && { echo: false }) };
      case 'unsub':
        return { op: 'unsub', id, topic: op.filter };
      case 'who':
        return { op: 'who', id, ...(op.topic && { topic: op.topic }), ...(op.limit && { limit: op.limit }) };
      case 'sub': {
        const f: Record<string, unknown> = { op: 'sub', id, topic: op.filter };
        if (!op.since) return f;
        const life = op.since.life === 'own' ? this.lifeOf[op.c] : op.since.life === 'bogus' ? 'bogus-life' : undefined;
        if (life !== undefined) f.life = life;
        const wildcard = op.filter.includes('+') || op.filter.includes('#');
        const positions: { topic: string; seq: number; epoch?: string }[] = [];
        for (const p of op.since.pos) {
          if (!filterMatches(op.filter, p.topic)) continue;
          const onTopic = this.acks.filter((a): a is NonNullable<typeof a> => a !== undefined && a.topic === p.topic);
          const a = onTopic.length ? onTopic[p.ack % onTopic.length]! : { topic: p.topic, seq: 1, epoch: 'bogus.1' };
          const pos = {
            exact: { seq: a.seq, epoch: a.epoch },
            stale: { seq: Math.max(0, a.seq - 2), epoch: a.epoch },
            beyond: { seq: a.seq + 5, epoch: a.epoch },
            bogusEpoch: { seq: a.seq, epoch: 'bogus.9' },
            noEpoch: { seq: a.seq },
            zero: { seq: 0 },
          }[p.kind];
          positions.push({ topic: p.topic, ...pos });
        }
        if (!wildcard) {
          const p = op.since.zero ? undefined : positions[0];
          f.since = p?.seq ?? 0;
          if (p?.epoch !== undefined && p.seq > 0) f.epoch = p.epoch;
        } else if (op.since.zero && positions.length === 0) {
          f.since = 0;
        } else {
          const since: Record<string, number> = {};
          const epoch: Record<string, string> = {};
          for (const p of positions) {
            since[p.topic] = p.seq;
            if (p.epoch !== undefined) epoch[p.topic] = p.epoch;
          }
          f.since = since;
          if (Object.keys(epoch).length) f.epoch = epoch;
        }
        return f;
      }
    }
  }

  /** Runs `op`; its normalised answer (and what a sub replayed). */
  async apply(op: Op, n: number): Promise<unknown> {
    const c = this.clients[op.c]!;
    const id = `o${n}`;
    const from = c.all.length;
    const reply = await c.request(this.frame(op, id), 5000);
    const out: Record<string, unknown> = { op: reply.op };
    if (reply.op === 'error') {
      out.code = reply.code;
      if (op.op === 'pub') this.acks.push(undefined);
      return out;
    }
    if (op.op === 'pub') {
      this.acks.push({ topic: op.topic, seq: reply.seq, epoch: reply.epoch });
      Object.assign(out, { seq: reply.seq, epoch: this.epochLabel(reply.epoch), delivered: reply.delivered, duplicate: reply.duplicate });
    } else if (op.op === 'sub') {
      this.lifeOf[op.c] = reply.life;
      // What the sub replayed: the msgs after its ack, up to a barrier.
      await c.quiet(() => false);
      const after = c.all.slice(from);
      const at = after.findIndex((f) => f.id === id);
      const replay = after.slice(at + 1).filter((f) => f.op === 'msg');
      const positions = reply.positions ? Object.fromEntries(Object.entries(reply.positions as Record<string, { seq: number; epoch: string }>).map(([t, p]) => [t, { seq: p.seq, epoch: this.epochLabel(p.epoch) }])) : undefined;
      Object.assign(out, {
        fields: Object.keys(reply).filter((k) => k !== 'id').sort(),
        recovered: reply.recovered,
        reason: reply.reason,
        missed: reply.missed,
        truncated: reply.truncated,
        positions,
        replay: replay.map((f) => this.msg(f)),
      });
    } else if (op.op === 'who') {
      out.clients = (reply.clients as { id: string; name: string; state: string }[]).map((x) => `${this.names.get(x.id) ?? x.id}:${x.name}:${x.state}`).sort();
      out.next = reply.next !== undefined;
    } else {
      out.fields = Object.keys(reply).sort();
    }
    return out;
  }

  /** Every msg each client received, in order, normalised. */
  received(): unknown[] {
    return this.clients.map((c) => c.all.filter((f) => f.op === 'msg').map((f) => this.msg(f)));
  }
}

export const tally: Record<string, number> = {};

export async function compare(ops: Op[], memory: Side, cluster: Side): Promise<void> {
  const log: string[] = [];
  for (let n = 0; n < ops.length; n++) {
    const op = ops[n]!;
    const a = await memory.apply(op, n);
    const b = await cluster.apply(op, n);
    log.push(`${n} ${JSON.stringify(op)} -> ${JSON.stringify(a)}`);
    const r = a as { recovered?: boolean; missed?: Record<string, string>; code?: string };
    if (r.recovered !== undefined) tally[`recovered:${r.recovered}`] = (tally[`recovered:${r.recovered}`] ?? 0) + 1;
    for (const why of Object.values(r.missed ?? {})) tally[why] = (tally[why] ?? 0) + 1;
    if (r.code) tally[`error:${r.code}`] = (tally[`error:${r.code}`] ?? 0) + 1;
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      throw new Error(`op ${n} differs\n${log.slice(-12).join('\n')}\nmemory frame:  ${JSON.stringify(memory.frame(op, 'x'))}\ncluster frame: ${JSON.stringify(cluster.frame(op, 'x'))}\nmemory:  ${JSON.stringify(a)}\ncluster: ${JSON.stringify(b)}`);
    }
  }
  await Promise.all([...memory.clients, ...cluster.clients].map((c) => c.quiet(() => false)));
  expect(cluster.received()).toEqual(memory.received());
}

describe.runIf(run)('differential: in-memory broker vs one-node Redis cluster', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('answer the same random operations the same way', async () => {
    const stats = { runs: 0, ops: 0 };
    // A fixed seed in the suite (deterministic: seeds 1–13, 21, 22, 31, 32 were explored green); DIFF_SEED explores more.
    const seed = Number(process.env.DIFF_SEED ?? 12);
    console.log(`differential seed ${seed}`);
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 40, maxLength: 80 }), async (ops) => {
        await redisCli(redis.port, 'FLUSHALL');
        const broker: TestBroker = await startTestBroker({ ...LIMITS });
        const node: TestBroker = await startNode(redis, { ...LIMITS, interestLingerMs: Number(process.env.DIFF_LINGER ?? 0) });
        const memory = new Side('memory', broker.url);
        const cluster = new Side('cluster', node.url);
        try {
          await memory.connect();
          await cluster.connect();
          await compare(ops, memory, cluster);
          stats.runs++;
          stats.ops += ops.length;
        } finally {
          memory.close();
          cluster.close();
          await broker.close();
          await node.close();
        }
      }),
      { seed, numRuns: Number(process.env.DIFF_RUNS ?? 8), interruptAfterTimeLimit: 60_000, markInterruptAsFailure: false },
    );
    console.log(`differential: ${stats.runs} runs, ${stats.ops} operations compared`, JSON.stringify(tally));
  }, 120_000);
});

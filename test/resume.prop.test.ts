// Positions never lie: random interleavings of publishes, disconnects, broker restarts, topic evictions and
// resumes with per-topic positions, over real sockets. After each resume, a topic is either replayed exactly
// (every message published while the client was away, in order) or named in `missed`: then nothing of it is
// replayed, except for `history_trimmed`, where exactly what the broker still holds after the position is;
// `recovered: true` only when every topic was replayed exactly. A second run names the topics like
// Object.prototype's members (`__proto__`, `toString`, …) under the filter `+`, with positions keyed by them.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient, type Frame } from './helpers/client.js';

type Action = 'pubA' | 'pubB' | 'pubC' | 'pubD' | 'disconnect' | 'restart' | 'evict' | 'resume' | 'trim';
type Pub = 'pubA' | 'pubB' | 'pubC' | 'pubD';
/** The filter resumed, and the topic each pub action publishes to (all matching it; `evict` publishes outside it). */
interface Topics {
  filter: string;
  topics: Record<Pub, string>;
}
const NESTED: Topics = { filter: 'r/#', topics: { pubA: 'r/a', pubB: 'r/b', pubC: 'r/c/x', pubD: 'r' } };
/** `{}` has these keys already; positions on topics called so must be checked like any. */
const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);
const isPub = (a: Action): a is Pub => a.startsWith('pub');
// Small bounds so that trimming and forgetting happen within a few steps.
const SETTINGS = { historySize: 3, maxTopics: 4, logLevel: 'silent' as const };

interface Published {
  topic: string;
  seq: number;
  epoch: string;
}

class Scenario {
  broker!: TestBroker;
  publisher!: TestClient;
  subscriber: TestClient | undefined;
  ledger: Published[] = [];
  /** The subscriber's position per topic: the last message it received. */
  positions = new Map<string, { seq: number; epoch: string }>();
  awayFrom = 0;
  /** The broker life from the last sub ack: positions are relative to it. */
  life: string | undefined;
  resumes = { recovered: 0, notRecovered: 0 };
  private evictions = 0;

  constructor(readonly names: Topics = NESTED) {}

  async start(): Promise<void> {
    this.broker = await startTestBroker(SETTINGS);
    this.publisher = await TestClient.connect(this.broker.url);
    this.subscriber = await TestClient.connect(this.broker.url);
    this.track(this.subscriber);
    const ack = await this.subscriber.request({ op: 'sub', topic: this.names.filter });
    expect(ack).toMatchObject({ op: 'ack', life: expect.any(String) });
    this.life = ack.life;
  }

  async stop(): Promise<void> {
    this.subscriber?.close();
    this.publisher.close();
    await this.broker.close();
  }

  /** Live messages move the subscriber's positions on, as a client library would. */
  private track(c: TestClient): void {
    c.ws.on('message', (raw) => {
      const f = JSON.parse(String(raw)) as Frame;
      if (f.op === 'msg') this.positions.set(f.topic, { seq: f.seq, epoch: f.epoch });
    });
  }

  async publish(topic: string): Promise<void> {
    const ack = await this.publisher.request({ op: 'pub', topic, data: this.ledger.length });
    expect(ack).toMatchObject({ op: 'ack' });
    this.ledger.push({ topic, seq: ack.seq, epoch: ack.epoch });
  }

  async disconnect(): Promise<void> {
    if (!this.subscriber) return;
    await this.subscriber.quiet(() => false); // everything acknowledged so far has reached it
    this.subscriber.close();
    await this.subscriber.closed;
    this.subscriber = undefined;
    this.awayFrom = this.ledger.length;
  }

  async restart(): Promise<void> {
    await this.disconnect();
    this.publisher.close();
    await this.broker.close();
    this.broker = await startTestBroker(SETTINGS);
    this.publisher = await TestClient.connect(this.broker.url);
  }

  /** Publishes to topics outside the filter until every `r/…` topic has been forgotten (maxTopics 4). */
  async evict(): Promise<void> {
    for (let i = 0; i < SETTINGS.maxTopics; i++) await this.publisher.request({ op: 'pub', topic: `x/${this.evictions++}`, data: 0 });
  }

  /** Several publishes to one topic: more than history keeps. */
  async trim(topic: string): Promise<void> {
    for (let i = 0; i <= SETTINGS.historySize; i++) await this.publish(topic);
  }

  async resume(): Promise<void> {
    if (this.subscriber) return;
    const c = await TestClient.connect(this.broker.url);
    // fromEntries: a topic called `__proto__` is an own key of the map sent, as in a client's JSON.
    const since = Object.fromEntries([...this.positions].map(([topic, p]) => [topic, p.seq])) as Record<string, number>;
    const epoch = Object.fromEntries([...this.positions].map(([topic, p]) => [topic, p.epoch])) as Record<string, string>;
    const ack = await c.request({ op: 'sub', topic: this.names.filter, since, epoch, life: this.life });
    this.life = ack.life;
    expect(ack.op).toBe('ack');
    await c.quiet(() => false); // the replay follows the ack; the pong follows the replay
    const replayed = c.all.filter((f) => f.op === 'msg');
    // Maps of what the ack says: its keys are topics, `__proto__` among them.
    const missed = new Map(Object.entries((ack.missed ?? {}) as Record<string, string>));
    const positions = new Map(Object.entries((ack.positions ?? {}) as Record<string, { seq: number; epoch: string }>));
    const truth = this.ledger.slice(this.awayFrom);
    const topics = new Set([...truth.map((p) => p.topic), ...positions.keys(), ...Object.keys(since)]);
    for (const topic of topics) {
      const got = replayed.filter((f) => f.topic === topic).map((f) => `${f.epoch}#${f.seq}`);
      const want = truth.filter((p) => p.topic === topic).map((p) => `${p.epoch}#${p.seq}`);
      if (missed.get(topic) === 'history_trimmed') {
        // Trimmed past its position: still a miss, and what the broker still holds of it is replayed: the newest
        // `historySize` of its current sequence after the position, in order, no more; all of it published while away.
        const now = positions.get(topic);
        expect(now, `${topic} is history_trimmed without a position`).toBeDefined();
        const after = Object.hasOwn(since, topic) ? since[topic]! : 0;
        const held = this.ledger
          .filter((p) => p.topic === topic && p.epoch === now!.epoch)
          .slice(-SETTINGS.historySize)
          .filter((p) => p.seq > after)
          .map((p) => `${p.epoch}#${p.seq}`);
        expect(held.length, `${topic} is history_trimmed: the broker still holds some of it`).toBeGreaterThan(0);
        expect(got, `${topic} is history_trimmed: the replay is what is still held`).toEqual(held);
        expect(want.slice(-held.length), `${topic}: what is held was published while away`).toEqual(held);
      } else if (missed.has(topic)) {
        expect(got, `${topic} is named in missed (${missed.get(topic)}) yet replayed`).toEqual([]);
      } else if (ack.recovered || positions.has(topic) || Object.hasOwn(since, topic)) {
        // Not named as missed: every message published while away, in order, no more.
        expect(got, `${topic}: replay vs what was published while away (ack ${JSON.stringify(ack)})`).toEqual(want);
      }
    }
    if (ack.recovered) expect([...missed.keys()]).toEqual([]);
    else expect(missed.size, `recovered:false names what was missed: ${JSON.stringify(ack)}`).toBeGreaterThan(0);
    this.resumes[ack.recovered ? 'recovered' : 'notRecovered']++;
    for (const f of replayed) this.positions.set(f.topic, { seq: f.seq, epoch: f.epoch });
    // What was missed the app refetches; it continues from the positions the ack gave (a trimmed topic: from the
    // end of its replay, as the client library does).
    for (const [topic, why] of missed) {
      if (why === 'history_trimmed') continue;
      const now = positions.get(topic);
      if (now) this.positions.set(topic, now);
    }
    this.track(c);
    this.subscriber = c;
  }

  async run(action: Action): Promise<void> {
    if (isPub(action)) return this.publish(this.names.topics[action]);
    if (action === 'disconnect') return this.disconnect();
    if (action === 'restart') return this.restart();
    if (action === 'evict') return this.evict();
    if (action === 'trim') return this.trim(this.names.topics.pubB);
    return this.resume();
  }
}

const action = fc.constantFrom<Action>('pubA', 'pubA', 'pubB', 'pubC', 'pubD', 'disconnect', 'disconnect', 'resume', 'resume', 'restart', 'evict', 'trim');

describe('resume with positions (protocol 2)', () => {
  const totals = { recovered: 0, notRecovered: 0 };
  afterAll(() => console.info(`resume property: ${totals.recovered} resumes recovered, ${totals.notRecovered} not recovered`));

  /** Runs `actions` (and a last resume) on a fresh broker, adding its verdicts to `into`. */
  async function play(names: Topics, actions: Action[], into: { recovered: number; notRecovered: number }): Promise<void> {
    const s = new Scenario(names);
    await s.start();
    try {
      for (const a of [...actions, 'resume' as const]) await s.run(a);
    } finally {
      into.recovered += s.resumes.recovered;
      into.notRecovered += s.resumes.notRecovered;
      await s.stop();
    }
  }

  it('never a gap with recovered:true; what is not named in missed is replayed exactly', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 25 }), (actions) => play(NESTED, actions, totals)),
      { numRuns: 100 },
    );
    // Both verdicts were exercised, or the property proved little.
    expect(totals.recovered).toBeGreaterThan(0);
    expect(totals.notRecovered).toBeGreaterThan(0);
  });

  it('the same with topics named like Object.prototype members under `+` (`__proto__`, `toString`, …)', { timeout: 120_000 }, async () => {
    const named = fc.shuffledSubarray(PROTOTYPE_NAMES, { minLength: 4, maxLength: 4 }).map(([a, b, c, d]): Topics => ({ filter: '+', topics: { pubA: a!, pubB: b!, pubC: c!, pubD: d! } }));
    const seen = { recovered: 0, notRecovered: 0 };
    await fc.assert(
      fc.asyncProperty(named, fc.array(action, { minLength: 1, maxLength: 25 }), (names, actions) => play(names, actions, seen)),
      { numRuns: 50 },
    );
    expect(seen.recovered).toBeGreaterThan(0);
    expect(seen.notRecovered).toBeGreaterThan(0);
  });
});

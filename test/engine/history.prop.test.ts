// History's bounds against a model: messages per topic, bytes per topic, bytes in total (oldest of any topic first),
// topics remembered (least recently published forgotten first), a message too big to keep. After every append, each
// topic replays exactly the messages the model keeps, in order, and the history's byte count is the model's.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { History } from '../../src/engine/history.js';

interface Limits {
  perTopic: number;
  maxTopics: number;
  topicBytes: number;
  totalBytes: number;
}

/** What History must keep, written the obvious way: one list of live messages in append order. */
class Model {
  kept: { topic: string; seq: number; message: string }[] = [];
  /** Topic → its last seq, in recency order (re-inserted on publish). */
  topics = new Map<string, number>();

  constructor(private readonly limits: Limits) {}

  append(topic: string, message: string): number {
    const l = this.limits;
    let last = this.topics.get(topic);
    if (last === undefined) {
      if (this.topics.size >= l.maxTopics) this.forget(this.topics.keys().next().value!);
      last = 0;
    }
    this.topics.delete(topic);
    const seq = last + 1;
    this.topics.set(topic, seq);
    const bytes = message.length;
    if (l.perTopic > 0 && bytes <= l.topicBytes && bytes <= l.totalBytes) {
      if (this.of(topic).length === l.perTopic) this.dropOldest(topic);
      while (this.of(topic).length > 0 && this.bytes(topic) + bytes > l.topicBytes) this.dropOldest(topic);
      this.kept.push({ topic, seq, message });
      while (this.bytes() > l.totalBytes) this.kept.shift();
    } else {
      this.kept = this.kept.filter((k) => k.topic !== topic);
    }
    return seq;
  }

  of(topic: string): { seq: number; message: string }[] {
    return this.kept.filter((k) => k.topic === topic);
  }

  bytes(topic?: string): number {
    return this.kept.filter((k) => topic === undefined || k.topic === topic).reduce((n, k) => n + k.message.length, 0);
  }

  private dropOldest(topic: string): void {
    this.kept.splice(this.kept.findIndex((k) => k.topic === topic), 1);
  }

  private forget(topic: string): void {
    this.topics.delete(topic);
    this.kept = this.kept.filter((k) => k.topic !== topic);
  }
}

const ALL = { maxTopics: 1000, maxMessages: 1_000_000, maxBytes: 1 << 30 };

/** Each topic of the model replays exactly its kept messages, from just before the oldest; from further back, the same with the miss named. */
function agree(history: History<string>, model: Model): void {
  expect(history.bytes).toBe(model.bytes());
  expect(history.topicCount).toBe(model.topics.size);
  for (const [name, last] of model.topics) {
    const kept = model.of(name);
    const position = history.position(name)!;
    expect(position.seq).toBe(last);
    const oldest = kept.length > 0 ? kept[0]!.seq : last + 1;
    // What is kept is consecutive up to the topic's last seq.
    expect(kept.map((k) => k.seq)).toEqual(Array.from({ length: kept.length }, (_, i) => last - kept.length + 1 + i));
    const r = history.resume(name, false, () => ({ seq: oldest - 1, epoch: position.epoch, listed: true }), ALL);
    expect(r.missed.size).toBe(0);
    expect(r.messages).toEqual(kept.map((k) => k.message));
    // One further back is gone: the resume says so, and replays what is kept (the gap before it named).
    if (oldest > 2) {
      const further = () => ({ seq: oldest - 2, epoch: position.epoch, listed: true });
      const trimmed = history.resume(name, false, further, ALL);
      expect(trimmed.missed.get(name)).toBe('history_trimmed');
      expect(trimmed.messages).toEqual(kept.map((k) => k.message));
      // A budget one short of what is kept: nothing of it, still history_trimmed (not replay_limit).
      if (kept.length > 0) {
        const tight = history.resume(name, false, further, { ...ALL, maxMessages: kept.length - 1 });
        expect(tight.missed.get(name)).toBe('history_trimmed');
        expect(tight.messages).toEqual([]);
      }
    }
  }
}

const limitsArb = fc.record({ perTopic: fc.integer({ min: 0, max: 6 }), maxTopics: fc.integer({ min: 1, max: 4 }), topicBytes: fc.integer({ min: 1, max: 40 }), totalBytes: fc.integer({ min: 1, max: 80 }) });
const appendArb = fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 25 }));

/** Appends to both; checks them against each other after every `every` appends and at the end. */
function run(limits: Limits, appends: [number, number][], every: number): void {
  const history = new History<string>(limits, (m) => m.length);
  const model = new Model(limits);
  appends.forEach(([t, size], i) => {
    const topic = `t/${t}`;
    const next = (model.topics.get(topic) ?? 0) + 1;
    const message = `${topic}#${next}`.padEnd(size, '.');
    expect(model.append(topic, message)).toBe(next);
    expect(history.append(topic, () => message).seq).toBe(next);
    if (i % every === every - 1) agree(history, model);
  });
  agree(history, model);
}

describe('History against a model of its bounds', () => {
  it('keeps exactly the newest messages each bound allows, and replays them in order', () => {
    fc.assert(
      fc.property(limitsArb, fc.array(appendArb, { minLength: 1, maxLength: 120 }), (limits, appends) => run(limits, appends, 1)),
      { numRuns: 300 },
    );
  });

  it('the same over thousands of appends (the queue of evicted messages is compacted many times over)', () => {
    fc.assert(
      // The byte bounds bind often here: which topic loses a message then depends on the queue's order being kept.
      fc.property(
        fc.record({ perTopic: fc.integer({ min: 2, max: 6 }), maxTopics: fc.integer({ min: 2, max: 4 }), topicBytes: fc.integer({ min: 20, max: 40 }), totalBytes: fc.integer({ min: 20, max: 60 }) }),
        fc.array(appendArb, { minLength: 4000, maxLength: 6000 }),
        (limits, appends) => run(limits, appends, 97),
      ),
      { numRuns: 8 },
    );
  });
});

// TopicIndex agrees with the reference matcher on random topics and filters, including after random unsubscribes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TopicIndex } from '../src/engine/topic-index.js';
import { TopicTree } from '../src/engine/topic-tree.js';
import { filterError, filterMatches, topicError } from '../src/protocol/topic.js';

const segment = fc.constantFrom('a', 'b', 'c', 'pump', '42');
const topicArb = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
const filterArb = fc
  .tuple(fc.array(fc.oneof(segment, fc.constant('+')), { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([s, hash]) => (hash ? [...s, '#'] : s).join('/'))
  .chain((f) => fc.constantFrom(f, '#', f));

describe('TopicIndex', () => {
  it('matches exactly like the reference matcher, each subscriber once, after adds and removes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), filterArb), { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 15 }),
        fc.array(topicArb, { minLength: 1, maxLength: 10 }),
        (subs, removals, topics) => {
          const index = new TopicIndex<number>();
          const held = new Set<string>(); // "subscriber|filter"
          for (const [s, f] of subs) {
            index.add(f, s);
            held.add(`${s}|${f}`);
          }
          const heldList = [...held];
          for (const r of removals) {
            if (heldList.length === 0) break;
            const [key] = heldList.splice(r % heldList.length, 1);
            const [s, f] = key!.split('|');
            expect(index.remove(f!, Number(s))).toBe(true);
            held.delete(key!);
          }
          for (const t of topics) {
            const expected = new Set<number>();
            for (const key of held) {
              const [s, f] = key.split('|');
              if (filterMatches(f!, t)) expected.add(Number(s));
            }
            const got = index.match(t);
            expect(new Set(got)).toEqual(expected);
            expect(got.length).toBe(expected.size); // delivered once
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('cached matches stay exact when subscriptions change between publishes (invalidation drops what a change can affect)', () => {
    type Op = { kind: 'add' | 'remove'; s: number; f: string } | { kind: 'match'; t: string };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constantFrom('add' as const, 'remove' as const), s: fc.integer({ min: 0, max: 3 }), f: fc.oneof(filterArb, topicArb) }),
      fc.record({ kind: fc.constant('match' as const), t: topicArb }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const index = new TopicIndex<number>();
        const held = new Map<string, Set<number>>();
        for (const o of ops) {
          if (o.kind === 'add') {
            index.add(o.f, o.s);
            held.set(o.f, (held.get(o.f) ?? new Set()).add(o.s));
          } else if (o.kind === 'remove') {
            index.remove(o.f, o.s);
            held.get(o.f)?.delete(o.s);
          } else if (o.kind === 'match') {
            const expected = new Set<number>();
            for (const [f, subscribers] of held) if (filterMatches(f, o.t)) for (const x of subscribers) expected.add(x);
            expect(new Set(index.match(o.t))).toEqual(expected);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('prunes to nothing once every subscription is removed', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), filterArb), { maxLength: 20 }), (subs) => {
        const index = new TopicIndex<number>();
        for (const [s, f] of subs) index.add(f, s);
        for (const [s, f] of subs) index.remove(f, s);
        expect(index.filterCount).toBe(0);
        expect(index.match('a/b')).toEqual([]);
      }),
    );
  });
});

describe('TopicTree', () => {
  it('removeMatching takes exactly the members a filter matches, and the tree prunes to nothing', () => {
    fc.assert(
      fc.property(fc.array(topicArb, { maxLength: 30 }), fc.array(filterArb, { maxLength: 5 }), (topics, filters) => {
        const tree = new TopicTree();
        const members = new Set<string>();
        for (const t of topics) expect(tree.add(t)).toBe(!members.has(t) && members.add(t) !== undefined);
        expect(tree.size).toBe(members.size);
        for (const f of filters) {
          const removed: string[] = [];
          tree.removeMatching(f, (t) => removed.push(t));
          const expected = [...members].filter((t) => filterMatches(f, t));
          expect(removed.sort()).toEqual(expected.sort());
          for (const t of expected) members.delete(t);
          expect(tree.size).toBe(members.size);
        }
        for (const t of members) expect(tree.delete(t)).toBe(true);
        expect(tree.size).toBe(0);
        // Nothing left to walk: a `#` sweep visits the root only.
        expect(tree.removeMatching('#', () => expect.fail('empty'))).toBe(1);
      }),
      { numRuns: 300 },
    );
  });

  it('adds and deletes agree with a set, whatever the order (compressed tails split and prune correctly)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), topicArb), { maxLength: 60 }), (ops) => {
        const tree = new TopicTree();
        const model = new Set<string>();
        for (const [add, t] of ops) {
          if (add) expect(tree.add(t)).toBe(!model.has(t));
          else expect(tree.delete(t)).toBe(model.has(t));
          if (add) model.add(t);
          else model.delete(t);
          expect(tree.size).toBe(model.size);
        }
        const all: string[] = [];
        tree.removeMatching('#', (t) => all.push(t));
        expect(all.sort()).toEqual([...model].sort());
      }),
      { numRuns: 500 },
    );
  });

  it('a wildcard walks the topics sharing its literal prefix, not the whole set', () => {
    const tree = new TopicTree();
    for (let i = 0; i < 10_000; i++) tree.add(`t/${i}`);
    // zz/+/x: no cached topic starts with zz: one node looked at, however many topics are held.
    expect(tree.removeMatching('zz/+/x', () => expect.fail('nothing matches'))).toBe(1);
    expect(tree.removeMatching('t/7', () => undefined)).toBe(3);
    const removed: string[] = [];
    expect(tree.removeMatching('t/#', (t) => removed.push(t))).toBe(10_000 + 1);
    expect(removed.length).toBe(9_999);
    expect(tree.size).toBe(0);
  });
});

describe('topic syntax', () => {
  it('accepts generated topics and filters', () => {
    fc.assert(fc.property(topicArb, (t) => topicError(t) === null));
    fc.assert(fc.property(filterArb, (f) => filterError(f) === null));
  });

  it('knows the documented edge cases', () => {
    expect(filterMatches('rowdata/+/42', 'rowdata/pump/42')).toBe(true);
    expect(filterMatches('alarm/#', 'alarm')).toBe(true);
    expect(filterMatches('alarm/#', 'alarm/a/b')).toBe(true);
    expect(filterMatches('+', 'a/b')).toBe(false);
    expect(topicError('a/+')).not.toBeNull();
    expect(filterError('a/#/b')).not.toBeNull();
    expect(topicError(Array.from({ length: 17 }, () => 'a').join('/'))).not.toBeNull();
    expect(topicError('a'.repeat(65))).not.toBeNull();
    expect(topicError('a\u0001')).not.toBeNull();
  });
});

// TopicIndex agrees with the reference matcher on random topics and filters, including after random unsubscribes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TopicIndex } from '../src/engine/topic-index.js';
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

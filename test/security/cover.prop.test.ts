// filterCovers against the reference matcher: "granted covers requested" must mean exactly
// "every topic the requested filter matches, the granted filter matches too".
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { filterCovers } from '../../src/protocol/cover.js';
import { filterMatches } from '../../src/protocol/topic.js';
import { Grant } from '../../src/auth/grant.js';

// Two literal segments plus one that no filter uses: enough to tell any two different filters apart.
const LITERALS = ['a', 'b'];
const FRESH = 'z';

const filterArb = fc
  .array(fc.constantFrom('a', 'b', '+'), { minLength: 1, maxLength: 4 })
  .chain((segs) => fc.boolean().map((hash) => (hash ? [...segs.slice(0, -1), '#'] : segs).join('/')));
const anyFilterArb = fc.oneof(filterArb, fc.constant('#'), fc.constant('+/#'));

/** Every topic of 1..maxLen segments over a, b and a fresh segment. */
function allTopics(maxLen: number): string[] {
  let level: string[][] = [[]];
  const out: string[] = [];
  for (let n = 1; n <= maxLen; n++) {
    level = level.flatMap((t) => [...LITERALS, FRESH].map((s) => [...t, s]));
    out.push(...level.map((t) => t.join('/')));
  }
  return out;
}
const TOPICS = allTopics(5);

function coversByEnumeration(granted: string, requested: string): boolean {
  return TOPICS.every((t) => !filterMatches(requested, t) || filterMatches(granted, t));
}

describe('filterCovers', () => {
  it('agrees with the reference matcher over every topic of up to 5 segments (filters have at most 4)', () => {
    fc.assert(
      fc.property(anyFilterArb, anyFilterArb, (granted, requested) => {
        expect(filterCovers(granted, requested)).toBe(coversByEnumeration(granted, requested));
      }),
      { numRuns: 1500 },
    );
  });

  it('is reflexive and transitive', () => {
    fc.assert(
      fc.property(anyFilterArb, anyFilterArb, anyFilterArb, (f, g, h) => {
        expect(filterCovers(f, f)).toBe(true);
        if (filterCovers(f, g) && filterCovers(g, h)) expect(filterCovers(f, h)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('worked examples', () => {
    expect(filterCovers('chat/#', 'chat/room/+')).toBe(true);
    expect(filterCovers('chat/#', 'chat')).toBe(true);
    expect(filterCovers('chat/+', 'chat/#')).toBe(false); // chat/#: also chat/a/b
    expect(filterCovers('chat/+', 'chat/+')).toBe(true);
    expect(filterCovers('chat/room', 'chat/+')).toBe(false);
    expect(filterCovers('+/#', '#')).toBe(true); // no topic is empty
    expect(filterCovers('a/+/#', 'a/#')).toBe(false); // a/# also matches a
  });
});

describe('Grant', () => {
  it('publish needs a matching pub filter; subscribe needs a covering sub filter; null lists allow all', () => {
    const g = new Grant({ name: 'alice', pub: ['chat/+'], sub: ['chat/#', 'news/+'], admin: false });
    expect(g.mayPublish('chat/room')).toBe(true);
    expect(g.mayPublish('chat/room/x')).toBe(false);
    expect(g.mayPublish('news/x')).toBe(false);
    expect(g.maySubscribe('chat/#')).toBe(true);
    expect(g.maySubscribe('news/+')).toBe(true);
    expect(g.maySubscribe('news/#')).toBe(false);
    expect(g.maySubscribe('#')).toBe(false);
    const open = new Grant({ name: 'bob', pub: null, sub: null, admin: false });
    expect(open.mayPublish('any/thing')).toBe(true);
    expect(open.maySubscribe('#')).toBe(true);
    const none = new Grant({ name: 'carol', pub: [], sub: [], admin: false });
    expect(none.mayPublish('a')).toBe(false);
    expect(none.maySubscribe('a')).toBe(false);
  });
});

// The SSE cursor (src/transports/sse/cursor.ts): what is written is read back, within its bound, and a cursor that
// had to leave something out says so, so that a resume never claims a position it does not have.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CURSOR_MAX_BYTES, decodeCursor, encodeCursor, resumeFrames, type Cursor } from '../../src/transports/sse/cursor.js';

const segment = fc.oneof(fc.constantFrom('a', 'b', 'pump', '__proto__', 'ü', '日本', '%', ';', ',', '!', '@', 'x y'), fc.string({ minLength: 1, maxLength: 6 }).filter((s) => !/[/+#\u0000-\u001f]/.test(s)));
const topic = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
const filter = fc.oneof(topic, topic.map((t) => `${t}/#`), topic.map((t) => t.replace(/^[^/]+/, '+')));
const life = fc.stringMatching(/^[a-z0-9]{1,10}$/);

const cursor: fc.Arbitrary<Cursor> = fc.record({ life, filters: fc.uniqueArray(filter, { maxLength: 6 }), topics: fc.uniqueArray(topic, { maxLength: 40 }), seqs: fc.array(fc.integer({ min: 1, max: 2 ** 40 }), { minLength: 40, maxLength: 40 }) }).map(({ life, filters, topics, seqs }) => ({
  life,
  filters: filters.map((f, i) => ({ filter: f, presence: i % 2 === 0 })),
  positions: new Map(topics.map((t, i) => [t, { seq: seqs[i]!, epoch: i % 3 === 0 ? `other.${i}` : `${life}.${i.toString(36)}` }])),
  flag: '' as const,
}));

describe('SSE cursor', () => {
  it('round-trips (ASCII, within the bound); whatever it leaves out is flagged', () => {
    fc.assert(
      fc.property(cursor, fc.integer({ min: 64, max: CURSOR_MAX_BYTES }), (c, max) => {
        const text = encodeCursor(c, max);
        expect(text.length).toBeLessThanOrEqual(max);
        expect(text).toMatch(/^[\x21-\x7e]*$/);
        const back = decodeCursor(text)!;
        expect(back).toBeDefined();
        expect(back.life).toBe(c.life);
        if (back.flag === 'f') return;
        expect(back.filters).toEqual(c.filters);
        for (const [t, p] of back.positions) expect(c.positions.get(t)).toEqual(p);
        if (back.positions.size < c.positions.size) expect(back.flag).toBe('p');
        else expect(back.flag).toBe('');
      }),
    );
  });

  it('resumes only what it holds: with positions left out, wildcards and concrete filters without a position are live only', () => {
    const c: Cursor = { life: 'L', filters: [{ filter: 'a/b', presence: false }, { filter: 'w/+', presence: true }, { filter: 'c', presence: false }], positions: new Map([['a/b', { seq: 3, epoch: 'L.1' }], ['w/x', { seq: 2, epoch: 'L.2' }]]), flag: '' };
    expect(resumeFrames(c)).toEqual({
      frames: [
        { op: 'sub', topic: 'a/b', since: 3, epoch: 'L.1', life: 'L' },
        { op: 'sub', topic: 'w/+', presence: true, since: { 'w/x': 2 }, epoch: { 'w/x': 'L.2' }, life: 'L' },
        { op: 'sub', topic: 'c', since: 0, life: 'L' },
      ],
      unresumable: [],
    });
    expect(resumeFrames({ ...c, flag: 'p' })).toEqual({
      frames: [{ op: 'sub', topic: 'a/b', since: 3, epoch: 'L.1', life: 'L' }, { op: 'sub', topic: 'w/+', presence: true }, { op: 'sub', topic: 'c' }],
      unresumable: ['w/+', 'c'],
    });
    // A planted lie: a cursor that dropped positions without its flag would resume `c` from 0 (a replay of what the
    // client had seen). The bound is what makes the flag: 30 bytes cannot hold both positions.
    const small = decodeCursor(encodeCursor(c, 30))!;
    expect(small.flag).toBe('p');
    expect(resumeFrames(small).unresumable).toEqual(['w/+', 'c']);
  });

  it('refuses what is not a cursor, never throws', () => {
    for (const bad of ['', 'x', '2;L;;a;', '1;L;q;a;', '1;L;;a;@5!.1!3', '1;L;;a;a!.1!0', '1;L;;a;a!.1!-1', '1;L;;%E0%A4%A;', '1;L;;a;a!.1', 'x'.repeat(5000), '1;L;;a,a;', '1;L;;a,!a;']) {
      expect(decodeCursor(bad)).toBeUndefined();
    }
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => void decodeCursor(s)));
  });
});

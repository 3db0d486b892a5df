// Fifo (src/protocol/fifo.ts) agrees with a plain array on random sequences of its operations, and its array stays
// bounded however many items came and went.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Fifo } from '../src/protocol/fifo.js';

type Op = { op: 'push'; n: number } | { op: 'shift'; n: number } | { op: 'slice'; n: number } | { op: 'clear' };

// Runs of pushes and shifts long enough to pass the compaction threshold (1024 cleared slots) within one sequence.
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('push' as const), n: fc.integer({ min: 1, max: 1500 }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('shift' as const), n: fc.integer({ min: 1, max: 1500 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('slice' as const), n: fc.integer({ min: 0, max: 2000 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
);

/** What compaction promises: never more slots than the items held plus as many again (or 1024). */
const bounded = (q: Fifo<unknown>) => q.slots < q.length + Math.max(q.length, 1024) || q.slots === 0;

describe('Fifo', () => {
  it('agrees with a plain array on push, shift, slice, iteration and clear, and stays bounded', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
        const q = new Fifo<number>();
        const model: number[] = [];
        let next = 0;
        for (const o of ops) {
          switch (o.op) {
            case 'push':
              for (let k = 0; k < o.n; k++, next++) {
                q.push(next);
                model.push(next);
              }
              break;
            case 'shift':
              {
                const got: (number | undefined)[] = [];
                const want: (number | undefined)[] = [];
                for (let k = 0; k < o.n; k++) {
                  got.push(q.shift());
                  want.push(model.shift());
                }
                expect(got).toEqual(want);
              }
              break;
            case 'slice':
              expect(q.slice(o.n)).toEqual(model.slice(0, o.n));
              break;
            case 'clear':
              q.clear();
              model.length = 0;
              break;
          }
          expect(q.length).toBe(model.length);
          expect(q.peek()).toBe(model[0]);
          expect(bounded(q)).toBe(true);
        }
        expect([...q]).toEqual(model);
      }),
      { numRuns: 300 },
    );
  });

  it('many push/shift cycles keep the array bounded (a queue that never empties compacts)', () => {
    const q = new Fifo<{ n: number }>();
    for (let k = 0; k < 10; k++) q.push({ n: k });
    let most = 0;
    let outOfOrder = 0;
    for (let k = 10; k < 200_000; k++) {
      q.push({ n: k });
      if (q.shift()!.n !== k - 10) outOfOrder++;
      most = Math.max(most, q.slots);
    }
    expect(outOfOrder).toBe(0);
    expect([...q].map((x) => x.n)).toEqual(Array.from({ length: 10 }, (_, i) => 199_990 + i));
    expect(most).toBeLessThan(10 + 1024 + 1);
  });

  it('an emptied queue holds no array; items pushed after that come out in order', () => {
    const q = new Fifo<string>();
    expect(q.slots).toBe(0);
    expect(q.shift()).toBeUndefined();
    q.push('a');
    q.push('b');
    expect(q.shift()).toBe('a');
    expect(q.shift()).toBe('b');
    expect(q.slots).toBe(0);
    q.push('c');
    expect([...q]).toEqual(['c']);
    q.clear();
    expect(q.slots).toBe(0);
    expect(q.length).toBe(0);
  });
});

// The client package carries its own copy of the wire contract (it imports nothing of the broker). These tests fail
// when the copies drift: the error codes the client knows against the broker's one table, and the client's topic
// matching against the broker's reference matcher.
import fc from 'fast-check';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { BROKER_ERROR_CODES, CLIENT_ERROR_CODES, isWildcard, matches, type BrokerErrorCode } from '@switchboard/client';
import { ERROR_CODES, type ErrorCode } from '../../src/protocol/errors.js';
import { filterMatches, isWildcard as brokerIsWildcard } from '../../src/protocol/topic.js';

describe('the client and the broker speak the same contract', () => {
  it("the client's broker error codes are exactly the broker's table", () => {
    expect([...BROKER_ERROR_CODES].sort()).toEqual(Object.keys(ERROR_CODES).sort());
    // The same at the type level: a code added on one side only fails the typecheck too.
    expectTypeOf<BrokerErrorCode>().toEqualTypeOf<ErrorCode>();
  });

  it("the client's own codes never shadow a broker code", () => {
    for (const code of CLIENT_ERROR_CODES) expect(Object.keys(ERROR_CODES)).not.toContain(code);
  });

  it('topic matching: the client agrees with the broker on every filter and topic', () => {
    const segment = fc.constantFrom('a', 'b', 'c', '__proto__', '');
    const topic = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
    const filter = fc.array(fc.oneof(segment, fc.constant('+'), fc.constant('#')), { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
    fc.assert(
      fc.property(filter, topic, (f, t) => {
        expect(matches(f, t)).toBe(filterMatches(f, t));
        expect(isWildcard(f)).toBe(brokerIsWildcard(f));
      }),
      { numRuns: 2000 },
    );
  });
});

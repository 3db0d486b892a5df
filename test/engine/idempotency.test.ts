// The in-memory engine's publish keys are bounded in time, in count and in bytes: a client that floods keyed
// publishes with long topics and keys pushes out the oldest keys, never grows the process past the byte bound.
import { describe, expect, it } from 'vitest';
import { PublishKeys } from '../../src/engine/idempotency.js';

describe('PublishKeys', () => {
  it('answers a retry within the window with the first position, and forgets it after', () => {
    let now = 1000;
    const keys = new PublishKeys(60_000, 10, () => now);
    keys.set('a/b', 'k1', { seq: 7, epoch: 'e1' });
    expect(keys.get('a/b', 'k1')).toEqual({ seq: 7, epoch: 'e1', delivered: 0, duplicate: true });
    expect(keys.get('a/c', 'k1')).toBeUndefined(); // keys are per topic
    now += 60_000;
    expect(keys.get('a/b', 'k1')).toBeUndefined();
    expect(keys.size).toBe(0);
    expect(keys.byteSize).toBe(0);
  });

  it('is bounded in count and in bytes, the oldest keys going first', () => {
    const keys = new PublishKeys(60_000, 1000, Date.now, 100_000);
    const topic = 't/'.padEnd(256, 'x');
    for (let i = 0; i < 5000; i++) keys.set(topic, `${i}`.padEnd(128, 'k'), { seq: i + 1, epoch: 'e' });
    expect(keys.byteSize).toBeLessThanOrEqual(100_000);
    expect(keys.size).toBeGreaterThan(0);
    expect(keys.size).toBeLessThan(1000); // the byte bound bites first with these long keys
    expect(keys.get(topic, '4999'.padEnd(128, 'k'))).toMatchObject({ seq: 5000 }); // the newest stays
    expect(keys.get(topic, '0'.padEnd(128, 'k'))).toBeUndefined(); // the oldest went
    const counted = new PublishKeys(60_000, 3);
    for (const k of ['a', 'b', 'c', 'd']) counted.set('x', k, { seq: 1, epoch: 'e' });
    expect(counted.size).toBe(3);
    expect(counted.get('x', 'a')).toBeUndefined();
  });
});

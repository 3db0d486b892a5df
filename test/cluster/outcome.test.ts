// What a failed publish is answered depends on whether its script may have run: a publish goes out only on a ready
// connection (outcome.ts Reach), and a sent one that timed out or lost its connection may have. On a Redis Cluster "ready" is the connection of the key's master, found by the key's slot,
// which must be Redis's own (checked here against values Redis documents, and in redis-cluster.test.ts against a
// live cluster's CLUSTER KEYSLOT).
import { describe, expect, it } from 'vitest';
import { keySlot, maybeRan } from '../../src/engine/redis/outcome.js';
import { KEYS } from '../../src/engine/redis/keys.js';

describe('publish outcomes', () => {
  it('keySlot is Redis Cluster\'s slot: CRC16 of the hash tag, mod 16384', () => {
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('123456789')).toBe(0x31c3 % 16384);
    expect(keySlot('{user1000}.following')).toBe(keySlot('{user1000}.followers'));
    expect(keySlot('foo{}{bar}')).toBe(keySlot('foo{}{bar}')); // an empty first tag: the whole key is hashed
    expect(keySlot('foo{}{bar}')).not.toBe(keySlot('bar'));
    expect(keySlot('foo{{bar}}zap')).toBe(keySlot('{bar'));
    expect(keySlot('héllo')).toBe(keySlot('{héllo}x')); // UTF-8 bytes, like Redis
    // Every key of one topic is in one slot (the publish script touches one slot).
    expect(keySlot(KEYS.meta('a/b'))).toBe(keySlot(KEYS.pubKey('a/b', 'k{x}')));
  });

  it('a sent command that timed out or lost its connection may have run; one Redis refused, or never written, did not', () => {
    for (const msg of ['Command timed out', 'Connection is closed.', 'read ECONNRESET', 'Reached the max retries per request limit (which is 1).']) {
      expect(maybeRan(new Error(msg))).toBe(true);
    }
    for (const msg of ["Stream isn't writeable and enableOfflineQueue options is false", 'CLUSTERDOWN The cluster is down', 'OOM command not allowed']) {
      expect(maybeRan(new Error(msg))).toBe(false);
    }
  });
});

// The releases of MQTT session holds that Redis did not answer (redis-sessions.ts): remembered, retried every second
// until Redis answers, and run before the next claim of their client id. Here against a script runner that fails
// while "Redis is down", to reach the bound (100,000 waiting) and long retry rounds without an outage of that size.
import { describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { createLogger } from '../../src/log.js';
import { RedisSessionStore } from '../../src/transports/mqtt/redis-sessions.js';
import { payloadOf } from '../../src/transports/mqtt/packets.js';
import type { ScriptRunner } from '../../src/engine/redis/script-runner.js';
import { RELEASE } from '../../src/transports/mqtt/redis-session-scripts.js';
import { until } from '../helpers/waits.js';

const log = createLogger('silent', false);

/**
 * A store whose Redis is down until `up()`; `released` lists the owners whose RELEASE ran, in order. `refuse(owner)`:
 * that owner's RELEASE keeps failing as Redis down does; `reject(owner)`: with an error reply.
 */
function storeWithOutage(roundTripMs = 0, refuse = (_owner: string) => false, reject = (_owner: string) => false, logger = log) {
  let down = true;
  const released: string[] = [];
  const scripts = {
    run: async (lua: string, _keys: string[], args: string[]) => {
      // RELEASE's arguments: client id, owner, drop, now, max sessions.
      const isRelease = lua === RELEASE;
      if (down || (isRelease && refuse(args[1]!))) throw new Error('Connection is closed.');
      if (isRelease && reject(args[1]!)) throw new Error('ERR user_script:3: WRONGTYPE Operation against a key holding the wrong kind of value');
      if (roundTripMs > 0) await new Promise((r) => setTimeout(r, roundTripMs));
      if (!isRelease) return [1]; // TAKE: nothing stored
      released.push(args[1]!);
      return 1;
    },
  } as unknown as ScriptRunner;
  return { store: new RedisSessionStore(scripts, 10, payloadOf, logger), released, up: () => void (down = false) };
}

describe('MQTT session releases Redis did not answer', () => {
  it('at the bound, a client id forgotten as the oldest while it gets one more release keeps that one (run before its next claim; the count back to 0)', async () => {
    const { store, released, up } = storeWithOutage();
    try {
      await store.release('a', 'a/1'); // client id 'a' first: the oldest
      for (let i = 0; i < 99_999; i++) await store.release(`c${i}`, `c${i}/1`);
      await store.release('a', 'a/2'); // at the bound: 'a' (with a/1) forgotten, a/2 remembered
      up();
      await store.take('a', 'a/3', false, true);
      expect(released).toContain('a/2');
      await until(() => store.pendingReleases === 0, 'no release waiting', 10_000);
    } finally {
      store.close();
    }
  }, 20_000);

  it('one retry round at a time: a release failing during a long round does not start a second one over the same releases', async () => {
    const { store, released, up } = storeWithOutage(1, (owner) => owner === 'late/1');
    try {
      for (let i = 0; i < 2000; i++) await store.release(`c${i}`, `c${i}/1`);
      up();
      await until(() => released.length > 0, 'the first round started', 5000);
      await store.release('late', 'late/1'); // Redis does not answer this one, while the round runs
      await until(() => store.pendingReleases <= 1, 'every release but the late one answered', 30_000);
      expect(released.length - new Set(released).size, 'releases sent more than once').toBe(0);
    } finally {
      store.close();
    }
  }, 40_000);

  it('one that Redis answers with an error reply does not hold the others up nor refuse its client id\'s claims, which do not use up its retries', async () => {
    const { store, released, up } = storeWithOutage(0, () => false, (owner) => owner === 'bad/1');
    try {
      await store.release('bad', 'bad/1'); // first: each round starts with it
      await store.release('other', 'other/1');
      up();
      await until(() => released.includes('other/1'), "other/1's release retried", 5000);
      // Each claim of 'bad' runs its release first, and goes through; error replies there do not count (a client
      // reconnecting fast would use them up in seconds): the retry rounds, once a second, do.
      for (let i = 2; i < 80; i++) expect(await store.take('bad', `bad/${i}`, false, true)).toEqual({ session: undefined });
      expect(store.pendingReleases).toBe(1);
    } finally {
      store.close();
    }
  });

  it('one that Redis refuses with an error reply in 60 retry rounds is given up (logged), the others released meanwhile', async () => {
    vi.useFakeTimers();
    const lines: { level: number; msg: string; clientId?: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const { store, released, up } = storeWithOutage(0, () => false, (owner) => owner === 'bad/1', logger);
    try {
      await store.release('bad', 'bad/1');
      await store.release('other', 'other/1');
      up();
      await vi.advanceTimersByTimeAsync(1000); // the first round: other/1 released, bad/1 refused once
      expect(released).toEqual(['other/1']);
      expect(store.pendingReleases).toBe(1);
      await vi.advanceTimersByTimeAsync(58 * 1000); // 59 refusals: still remembered
      expect(store.pendingReleases).toBe(1);
      const givenUp = () => lines.filter((l) => l.msg.includes('given up'));
      expect(givenUp()).toEqual([]);
      await vi.advanceTimersByTimeAsync(1000); // the 60th: given up, and no round is planned any more
      expect(store.pendingReleases).toBe(0);
      expect(givenUp()).toEqual([expect.objectContaining({ level: 50, clientId: 'bad' })]);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      store.close();
      vi.useRealTimers();
    }
  });
});

// The reaper's pass on its own, with a recording stand-in for the REAP script (the cluster tests run it on a real
// Redis): every other node is claimed, this one never; a finished pass is counted, a failed one is not; a pass asked
// for while one is still out is left to it, so passes never overlap (what the cluster tests' waits for passes rely on).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Reaper } from '../../../src/engine/redis/reaper.js';
import { BrokerStats } from '../../../src/engine/stats.js';

const log = pino({ level: 'silent' });

/** A REAP stand-in: the nodes asked about, in order; `answers` says what each node's claim returns (-1: alive). */
function reapScript(answers: Record<string, number | Error>) {
  const asked: string[] = [];
  const waiting: (() => void)[] = [];
  let held = false;
  return {
    asked,
    /** Claims wait until `release()` while held. */
    hold: () => void (held = true),
    release: () => {
      held = false;
      for (const w of waiting.splice(0)) w();
    },
    script: async (_lua: string, _keys: string[], args: string[]) => {
      const node = args[0]!;
      asked.push(node);
      if (held) await new Promise<void>((r) => waiting.push(r));
      const answer = answers[node] ?? -1;
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
}

describe('Reaper', () => {
  it('claims every other node, counts the pass and the nodes reaped, tells its listeners', async () => {
    const stats = new BrokerStats();
    const redis = reapScript({ dead: 3 });
    const reaper = new Reaper({ self: 'me', script: redis.script, log, stats });
    const told: string[] = [];
    reaper.onReaped((n) => told.push(n));
    await reaper.pass(['me', 'alive', 'dead']);
    expect(redis.asked).toEqual(['alive', 'dead']);
    expect(told).toEqual(['dead']);
    expect({ passes: stats.clusterReaperPasses, reaped: stats.clusterNodesReaped }).toEqual({ passes: 1, reaped: 1 });
  });

  it('a pass asked for while one is out is left to it: passes never overlap, each counted once it finished', async () => {
    const stats = new BrokerStats();
    const redis = reapScript({});
    const reaper = new Reaper({ self: 'me', script: redis.script, log, stats });
    redis.hold();
    const first = reaper.pass(['me', 'other']);
    const second = reaper.pass(['me', 'other']); // the first is still out: nothing asked
    await new Promise((r) => setImmediate(r));
    expect(redis.asked).toEqual(['other']);
    expect(stats.clusterReaperPasses).toBe(0);
    redis.release();
    await Promise.all([first, second]);
    expect(stats.clusterReaperPasses).toBe(1);
    await reaper.pass(['me', 'other']);
    expect(redis.asked).toEqual(['other', 'other']);
    expect(stats.clusterReaperPasses).toBe(2);
  });

  it('a pass whose claim fails (Redis away) is not counted, and the next pass runs', async () => {
    const stats = new BrokerStats();
    const answers: Record<string, number | Error> = { other: new Error('Connection is closed.') };
    const redis = reapScript(answers);
    const reaper = new Reaper({ self: 'me', script: redis.script, log, stats });
    await expect(reaper.pass(['me', 'other'])).rejects.toThrow('Connection is closed.');
    expect(stats.clusterReaperPasses).toBe(0);
    answers.other = -1;
    await reaper.pass(['me', 'other']);
    expect(redis.asked).toEqual(['other', 'other']);
    expect(stats.clusterReaperPasses).toBe(1);
  });
});

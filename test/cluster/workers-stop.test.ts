// SIGTERM to the primary while a worker it restarted after a crash is still starting: the primary SIGTERMs that worker
// (it has no clients yet), which dies of the signal (its handlers come once its broker listens) — what it was asked.
// The primary counted it as a failed worker, so a clean, requested shutdown exited 1.
import { afterEach, describe, expect, it } from 'vitest';
import { FAST_NODE_FLAGS, requireRedis, TestRedis } from './redis.js';
import { spawnWorkers } from '../helpers/child-broker.js';
import { PROCESS_START_MS } from '../helpers/waits.js';

const run = requireRedis('serve --workers');

describe.skipIf(!run)('serve --workers 2: SIGTERM while a restarted worker starts', () => {
  const cleanup: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  it('exits 0: nothing failed, the operator asked to stop', async () => {
    const redis = await TestRedis.start();
    cleanup.push(() => redis.stop());
    const w = await spawnWorkers(['--workers', '2', '--redis', redis.url, ...FAST_NODE_FLAGS]);
    cleanup.push(() => {
      for (const pid of new Set([w.child.pid!, ...w.lines.map((l) => l.pid)])) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    });
    const victim = w.pids[0]!;
    process.kill(victim, 'SIGKILL');
    // The replacement is forked (200 ms later); stop the broker before it reports ready.
    const started = await w.line((l) => l.msg === 'worker started' && l.workerPid !== undefined && !w.pids.includes(l.workerPid), 5000);
    w.child.kill('SIGTERM');
    const exit = await w.exited;
    expect(exit).toEqual({ code: 0, signal: null }); // it was { code: 1 }
    // (When the replacement was ready before the signal, it drained as any worker: the test then shows that path.)
    expect(w.lines.some((l) => l.msg === 'worker stopped' && l.workerPid === started.workerPid)).toBe(true);
  }, PROCESS_START_MS + 30_000);
});

// The node heartbeat survives a stuck main event loop (a saturated core, a long GC): it is refreshed from a thread
// of its own, so a node that is slow is not reaped as dead (its clients are not announced as `timeout`), while a
// node whose main loop stays stuck past its hang limit is reaped like a dead one. Real processes, a private Redis.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { reaperPasses, requireRedis, startNode, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { PROCESS_START_MS } from '../helpers/waits.js';

const run = requireRedis('cluster heartbeat');
// A refresh may be late by most of the TTL before the key expires: 1 s was not enough beside other suites (load 26 on
// 2 cores, four vitest workers: the slow node was reaped during its stall in 1 run of 10), 2 s as FAST_NODE's.
const TTL_MS = 2000;
const TICK_MS = 200;

interface StallNode {
  child: ChildProcess;
  port: number;
  /**
   * Its main loop stuck until `release()` (or maxMs): for as long as the test's condition takes, however loaded the
   * machine. With `sayMs`, `stuck` resolves once it has been stuck that long (the child says so while still stuck).
   */
  hold(maxMs: number, sayMs?: number): { release(): void; stuck: Promise<unknown>; done: Promise<Record<string, number>> };
}

function stallNode(redisUrl: string, hangMs: number): Promise<StallNode> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/cluster/stall-node.ts', redisUrl, String(TTL_MS), String(TICK_MS), String(hangMs)], {
    cwd: new URL('../..', import.meta.url).pathname,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting: { key: string; resolve: (line: Record<string, number>) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const entry = JSON.parse(line) as Record<string, number>;
      for (const w of waiting.filter((w) => w.key in entry)) waiting.splice(waiting.indexOf(w), 1), w.resolve(entry);
    } catch {
      /* not ours */
    }
  });
  /** The next line of the child's that carries `key`. */
  const next = (key: string) => new Promise<Record<string, number>>((resolve) => waiting.push({ key, resolve }));
  return next('port').then(({ port }) => ({
    child,
    port: port!,
    hold: (maxMs: number, sayMs?: number) => {
      const path = join(mkdtempSync(join(tmpdir(), 'sb-stall-')), 'release');
      const stuck = sayMs === undefined ? Promise.resolve() : next('stuck');
      const done = next('stalled');
      child.stdin!.write(`hold ${path} ${maxMs}${sayMs === undefined ? '' : ` ${sayMs}`}\n`);
      return { release: () => writeFileSync(path, ''), stuck, done };
    },
  }));
}

describe.skipIf(!run)('cluster: node heartbeat', () => {
  let redis: TestRedis;
  let survivor: TestBroker;
  const children: ChildProcess[] = [];
  const HANG_MS = 3000; // more than the TTL
  /** By hang limit: one slow node per test, started together (each a process of its own, slow to start). */
  const slowNodes = new Map<number, StallNode>();

  beforeAll(async () => {
    redis = await TestRedis.start();
    survivor = await startNode(redis);
    await Promise.all(
      [30_000, HANG_MS].map(async (hang) => {
        const slow = await stallNode(redis.url, hang);
        children.push(slow.child);
        slowNodes.set(hang, slow);
      }),
    );
  }, PROCESS_START_MS);
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await survivor?.close();
    await redis?.stop();
  });

  const setup = async (hangMs: number, name: string) => {
    const slow = slowNodes.get(hangMs)!;
    const watcher = await TestClient.connect(survivor.url);
    await watcher.request({ op: 'sub', topic: `room-${name}`, presence: true });
    const client = await TestClient.connect(`ws://127.0.0.1:${slow.port}/ws?name=${name}`);
    await client.request({ op: 'sub', topic: `room-${name}` });
    await watcher.next((f) => f.op === 'event' && f.event === 'join' && f.client?.name === name);
    return { slow, watcher, client };
  };

  // The two tests run side by side (each has its own slow node, watcher and room): their stalls are waits, not work.
  it.concurrent('a main loop stuck for 4× the heartbeat TTL is not taken for dead: no timeout, its client keeps its name and its messages', async ({ expect }) => {
    const { slow, watcher, client } = await setup(30_000, 'slowpoke');
    // Stuck for 4× the TTL (the fault under test, said by the stuck node itself): without its heartbeat thread its
    // key would have expired by then. While it is still stuck, two whole passes of the survivor's reaper look at that
    // key: what shows it was not reaped is the reaper having looked, not a wait of some length.
    const stuck = slow.hold(60_000, TTL_MS * 4);
    await stuck.stuck;
    await reaperPasses([survivor], 3);
    stuck.release();
    expect((await stuck.done).stalled).toBeGreaterThanOrEqual(TTL_MS * 4);
    // A REAP publishes its timeouts before it answers, so by the barrier after the passes any would be here.
    expect(await watcher.quiet((f) => f.op === 'event' && f.client?.name === 'slowpoke' && f.event !== 'join')).toBe(true);
    const who = await watcher.request({ op: 'who' });
    expect(who.clients.map((c: { name: string }) => c.name)).toContain('slowpoke');
    await watcher.request({ op: 'pub', topic: 'room-slowpoke', data: 'still here' });
    expect((await client.next((f) => f.op === 'msg')).data).toBe('still here');
    for (const c of [watcher, client]) c.close();
    slow.child.kill('SIGKILL');
  }, 30_000);

  it.concurrent('a main loop stuck past the hang limit is reaped like a dead node: one timeout, then the node re-asserts its client and announces it again', async ({ expect }) => {
    const { slow, watcher, client } = await setup(HANG_MS, 'stuck');
    // Stuck until the survivor has reaped it (past the hang limit and the TTL): a condition, not a stall of a fixed
    // length that a loaded machine's slow reaper could outlast.
    const stuck = slow.hold(20_000);
    const timeout = await watcher.next((f) => f.op === 'event' && f.client?.name === 'stuck' && f.event !== 'join', 15_000);
    expect(timeout).toMatchObject({ event: 'timeout', topic: 'room-stuck' });
    stuck.release();
    // Not reaped before its loop was stuck past the hang limit (the thread refreshed the key until then).
    expect((await stuck.done).stalled).toBeGreaterThanOrEqual(HANG_MS);
    // Back: the node finds it was reaped and re-asserts its client (who lists it again).
    await until(async () => (await watcher.request({ op: 'who' })).clients.some((c: { name: string }) => c.name === 'stuck'), '`who` to list the re-asserted client', 5000);
    // Its presence was ended by the timeout, so it is announced again: the watcher knows it is back.
    await watcher.next((f) => f.op === 'event' && f.client?.name === 'stuck' && f.event === 'join' && watcher.all.filter((g) => g.op === 'event' && g.event === 'join' && g.client?.name === 'stuck').length === 2, 10_000);
    for (const c of [watcher, client]) c.close();
    slow.child.kill('SIGKILL');
  }, 30_000);
});

// `serve --workers N --redis …` with real processes: one port spread over the workers (each a cluster node), a
// worker killed with SIGKILL restarted by the primary while the port keeps answering and its clients resume on the
// others, SIGTERM to the primary draining every worker (1001, leaves announced) and exiting 0; --workers without
// --redis refused.
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { FAST_NODE_FLAGS, freePort, REAP_GUARD_MS, requireRedis, TestRedis } from './redis.js';
import { spawnWorkers, type ChildWorkers } from '../helpers/child-broker.js';
import { TestClient } from '../helpers/client.js';
import { LineClient } from '../helpers/line-client.js';
import { restartDelay, RESTART_MAX_MS } from '../../src/cli/workers.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { cliArgs } from '../helpers/cli.js';
import { PROCESS_START_MS } from '../helpers/waits.js';

const run = requireRedis('serve --workers');

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('serve --workers: settings', () => {
  it('--workers without --redis is a config error naming both flags (exit 2)', async () => {
    const child = spawn(process.execPath, [...cliArgs(), 'serve', '--workers', '2', '--port', '0'], {
      cwd: new URL('../..', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(2);
    expect(err).toMatch(/--workers 2 needs --redis/);
  });

  it('restarts back off: doubling from 200 ms per quick crash, capped', () => {
    expect([1, 2, 3, 4].map(restartDelay)).toEqual([200, 400, 800, 1600]);
    expect(restartDelay(50)).toBe(RESTART_MAX_MS);
  });
});

describe.skipIf(!run)('serve --workers 2 --redis', () => {
  const cleanup: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  const start = async (extra: string[] = []): Promise<{ w: ChildWorkers; redis: TestRedis }> => {
    const redis = await TestRedis.start();
    cleanup.push(() => redis.stop());
    const w = await spawnWorkers(['--workers', '2', '--redis', redis.url, ...FAST_NODE_FLAGS, ...extra]);
    cleanup.push(() => {
      // Whatever the test left running: the primary and every worker it ever logged.
      for (const pid of new Set([w.child.pid!, ...w.lines.map((l) => l.pid)])) if (alive(pid)) process.kill(pid, 'SIGKILL');
    });
    return { w, redis };
  };
  const connect = async (w: ChildWorkers, query = ''): Promise<TestClient> => {
    const c = await TestClient.connect(`ws://127.0.0.1:${w.port}/ws${query}`);
    cleanup.push(() => c.close());
    return c;
  };
  /** Connects until a client lands on a worker other than `pid` (the primary hands sockets out in turn). */
  const connectAwayFrom = async (w: ChildWorkers, pid: number): Promise<TestClient> => {
    for (let i = 0; i < 8; i++) {
      const c = await connect(w);
      if ((await w.pidOf(c.hello.client.id)) !== pid) return c;
    }
    throw new Error(`every connection landed on worker ${pid}`);
  };

  it('one port, both workers: WebSocket and TCP clients land on each, pub/sub and who span them', async () => {
    const { w } = await start(['--tcp-port', String(await freePort())]);
    expect(w.pids).toHaveLength(2);
    const clients = [];
    for (let i = 0; i < 4; i++) clients.push(await connect(w));
    const pids = await Promise.all(clients.map((c) => w.pidOf(c.hello.client.id)));
    expect(new Set(pids)).toEqual(new Set(w.pids));
    // A subscriber on one worker hears a publish made on the other.
    const sub = clients[0]!;
    const pub = clients[pids.findIndex((p) => p !== pids[0])]!;
    await sub.request({ op: 'sub', topic: 'news' });
    expect(await pub.request({ op: 'pub', topic: 'news', data: 'across' })).toMatchObject({ op: 'ack', seq: 1 });
    expect(await sub.next((f) => f.op === 'msg')).toMatchObject({ topic: 'news', data: 'across', seq: 1 });
    // who from either worker lists the clients of both.
    for (const c of [sub, pub]) {
      const who = await c.request({ op: 'who' });
      expect(who.clients.map((x: { id: string }) => x.id)).toEqual(expect.arrayContaining(clients.map((x) => x.hello.client.id)));
    }
    // The TCP port is shared the same way: connections land on both workers. (Not strictly in turn: the primary hands
    // a socket to a worker that has taken the previous one; on a loaded machine two in a row went to the same worker.)
    const tcpPid = async (x: LineClient) => (await w.line((l) => l.msg === 'connect' && l.addr === x.addr)).pid;
    const a = await LineClient.connect(w.tcpPort);
    cleanup.push(() => a.destroy());
    let b: LineClient | undefined;
    for (let i = 0; i < 8 && !b; i++) {
      const x = await LineClient.connect(w.tcpPort);
      cleanup.push(() => x.destroy());
      if ((await tcpPid(x)) !== (await tcpPid(a))) b = x;
    }
    if (!b) throw new Error('every TCP connection landed on one worker');
    expect(new Set([await tcpPid(a), await tcpPid(b)])).toEqual(new Set(w.pids));
    a.send('hello from a');
    await b.next(`[${a.addr}]${a.addr}: hello from a`);
  }, PROCESS_START_MS + 30_000);

  it('kill -9 of a worker: the primary restarts it, the port keeps answering, its clients time out and resume elsewhere', async () => {
    const { w } = await start();
    const watcher = await connect(w);
    const survivor = await w.pidOf(watcher.hello.client.id);
    await watcher.request({ op: 'sub', topic: 'room', presence: true });
    const bob = await connectAwayFrom(w, survivor);
    const victim = await w.pidOf(bob.hello.client.id);
    expect(await bob.request({ op: 'rename', name: 'bob' })).toMatchObject({ op: 'ack', name: 'bob' });
    await bob.request({ op: 'sub', topic: 'room' });
    const feed = await bob.request({ op: 'sub', topic: 'feed' });
    for (let i = 1; i <= 3; i++) await watcher.request({ op: 'pub', topic: 'feed', data: i });
    for (let i = 1; i <= 3; i++) await bob.next((f) => f.op === 'msg' && f.data === i);
    const last = bob.all.filter((f) => f.op === 'msg').at(-1)!;

    const victimNode = (await w.line((l) => l.msg === 'cluster node up' && l.pid === victim)).node as string;
    process.kill(victim, 'SIGKILL');
    expect((await bob.closed).code).toBe(1006);
    const died = await w.line((l) => l.msg.startsWith('worker died') && l.workerPid === victim);
    expect(died).toMatchObject({ level: 40, signal: 'SIGKILL', code: null, restartInMs: 200 });
    expect(died.msg).toBe('worker died (SIGKILL): restarting in 200 ms');
    // The port answers while the dead worker is being replaced (the survivor takes every connection).
    for (let i = 0; i < 4; i++) expect((await fetch(`http://127.0.0.1:${w.port}/healthz`)).status).toBe(200);
    for (let i = 4; i <= 6; i++) await watcher.request({ op: 'pub', topic: 'feed', data: i });

    // A live worker (the survivor, or the replacement once it is up) reaps the dead worker's node when its heartbeat
    // expires: bob's presence ends with a timeout, and the reaper says whose node it took (its TTL is all that is
    // waited for; the guard only reports a reaper that never comes).
    const timeout = await watcher.next((f) => f.op === 'event' && f.client?.name === 'bob' && f.event !== 'join', REAP_GUARD_MS);
    expect(timeout).toMatchObject({ event: 'timeout', topic: 'room', client: { id: bob.hello.client.id } });
    const reaped = await w.line((l) => l.msg.startsWith('node gone (heartbeat expired)') && l.dead === victimNode);
    expect(reaped).toMatchObject({ level: 40, clients: 1 }); // bob, its only client

    // bob's client comes back through the same port and resumes from its last position: exactly 4..6.
    const again = await connect(w);
    expect(await again.request({ op: 'sub', topic: 'feed', since: last.seq, epoch: last.epoch, life: feed.life })).toMatchObject({ recovered: true });
    await watcher.request({ op: 'pub', topic: 'feed', data: 7 });
    await again.next((f) => f.op === 'msg' && f.data === 7);
    expect(again.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual([4, 5, 6, 7]);

    // The replacement is a new process, and new connections reach it too.
    const restarted = await w.line((l) => l.msg === 'worker ready' && l.workerPid !== victim && !w.pids.includes(l.workerPid));
    expect(alive(victim)).toBe(false);
    const landed = new Set<number>();
    for (let i = 0; i < 4 && !landed.has(restarted.workerPid); i++) landed.add(await w.pidOf((await connect(w)).hello.client.id));
    expect(landed).toContain(restarted.workerPid);
  }, PROCESS_START_MS + 40_000);

  it('SIGTERM to the primary: every worker drains (clients get 1001, leaves announced) and the primary exits 0', async () => {
    const { w, redis } = await start();
    const clients = [];
    for (let i = 0; i < 4; i++) clients.push(await connect(w, `?name=n${i}`));
    for (const c of clients) await c.request({ op: 'sub', topic: 'hall' });
    expect(new Set(await Promise.all(clients.map((c) => w.pidOf(c.hello.client.id))))).toEqual(new Set(w.pids));

    w.child.kill('SIGTERM');
    const closes = await Promise.all(clients.map((c) => c.closed));
    expect(closes.map((c) => c.code)).toEqual([1001, 1001, 1001, 1001]);
    expect(await w.exited).toEqual({ code: 0, signal: null });
    for (const pid of w.pids) expect(alive(pid)).toBe(false);
    const stopped = w.lines.filter((l) => l.msg === 'worker stopped');
    expect(stopped.map((l) => l.code)).toEqual([0, 0]);
    expect(w.lines.at(-1)).toMatchObject({ msg: 'every worker stopped', code: 0 });
    // Each worker dropped its clients' records and names and withdrew its node: nothing is left to reap.
    const r = new Redis(redis.url);
    try {
      expect(await r.hlen(KEYS.clients)).toBe(0);
      expect(await r.hlen(KEYS.names)).toBe(0);
      expect(await r.scard(KEYS.nodes)).toBe(0);
    } finally {
      r.disconnect();
    }
  }, PROCESS_START_MS + 30_000);
});

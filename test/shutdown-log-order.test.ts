// The log of a shutdown reads in order even when whoever reads the broker's stdout is slower than the broker: a line
// still waiting for room in a full pipe must not be overtaken by the lines written at exit.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { cliArgs } from './helpers/cli.js';
import { TestClient } from './helpers/client.js';
import { until } from './cluster/redis.js';

describe('shutdown log behind a slow reader', () => {
  it('every line arrives, in the order it was logged, when stdout is read only after SIGTERM', { timeout: 60_000 }, async () => {
    const child = spawn(process.execPath, [...cliArgs(), 'serve', '--port', '0', '--tcp-port', '0', '--log-level', 'info'], {
      cwd: new URL('..', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = once(child, 'exit');
    let out = '';
    const onData = (d: Buffer) => (out += d.toString());
    child.stdout!.on('data', onData);
    await until(() => /"msg":"switchboard listening"/.test(out), 'the broker listening');
    const port = Number(/"port":(\d+)/.exec(out)![1]);
    // Stop reading: the pipe and this side's buffer (64 KB each) fill with the clients' connect and close lines.
    child.stdout!.off('data', onData);
    child.stdout!.pause();
    const clients = 700;
    for (let i = 0; i < clients; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => TestClient.connect(`ws://127.0.0.1:${port}/ws`)));
      await Promise.all(batch.map((c) => (c.close(), c.closed)));
    }
    child.kill('SIGTERM');
    // The broker stops listening at once, then gets to its exit with the pipe still full.
    await until(async () => !(await fetch(`http://127.0.0.1:${port}/healthz`).then(() => true, () => false)), 'the broker stopped listening');
    // A pause, since nothing the broker does can be seen from here while its stdout is full: a broker slower than
    // this reaches its exit after the reading resumed, and the test then checks less (it cannot fail for that). A
    // line on stderr when the broker starts waiting for its log to drain (endLog) would let the test wait for that.
    await delay(300);
    child.stdout!.on('data', onData);
    child.stdout!.resume();
    const [code] = await exited;
    expect(code).toBe(0);
    const msgs = out.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs.filter((m) => m === 'connect')).toHaveLength(clients);
    expect(msgs.filter((m) => m === 'close')).toHaveLength(clients);
    // The last clients' closes may still be logged after SIGTERM; the shutdown's own lines come in their order.
    expect(msgs.filter((m) => m !== 'close' && m !== 'connect').slice(-3)).toEqual(['shutdown requested', 'shutdown: closing every connection with 1001', 'switchboard stopped']);
  });
});

// `switchboard sub` on the client library, as a user runs it: exactly --count messages; across a broker restart it
// reconnects, says on stderr that the resume was not recovered, and goes on printing; a --since the broker cannot
// vouch for is said at once; a dead URL is one message and exit 1, or in a terminal one status line that counts down.
import { spawn, spawnSync } from 'node:child_process';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchboardClient } from '@switchboard/client';
import { freePort } from '../helpers/ports.js';
import { startTestBroker } from '../helpers/broker.js';
import { until } from './proxy.js';
import { cliArgs } from '../helpers/cli.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const haveScript = spawnSync('script', ['--version']).status === 0;
if (!haveScript) console.warn('sub-cli: the terminal tests are skipped: util-linux `script` is missing');
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function sub(args: string[]) {
  const child = spawn(process.execPath, [...cliArgs(), 'sub', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out.stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out.stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  cleanup.push(() => child.kill());
  return { child, out, exited };
}

describe('switchboard sub', () => {
  it('--count 1 prints exactly one message even when more arrive at once', { timeout: 30_000 }, async () => {
    const broker = await startTestBroker();
    cleanup.push(() => broker.close());
    const s = sub(['--url', broker.url, '--count', '1', 'burst/#']);
    await until(() => broker.hub.inspect.holders('burst/#').length > 0, 'the subscription', 15_000);
    const writer = new SwitchboardClient({ url: broker.url });
    cleanup.push(() => writer.close());
    await writer.connect();
    // Three in one burst: they reach the subscriber in the same socket read.
    await Promise.all([1, 2, 3].map((n) => writer.publish('burst/x', n)));
    expect(await s.exited).toBe(0);
    expect(s.out.stdout.trim().split('\n').map((l) => JSON.parse(l))).toMatchObject([{ op: 'msg', topic: 'burst/x', seq: 1, data: 1 }]);
    expect(s.out.stderr).toBe('');
  });

  it('a listener that never sends a frame stays connected through three idle periods (it answers pings)', { timeout: 30_000 }, async () => {
    // A ping every second, to be answered before the next: the sub process answers in time even when a loaded machine
    // leaves it waiting for a moment (at 100 ms, and once at 500 ms with the machine at load 5, it did not). Three
    // idle periods pass while it answers three of them.
    const idle = { idleMs: 150, idleGraceMs: 100, heartbeatMs: 1000 };
    const broker = await startTestBroker(idle);
    cleanup.push(() => broker.close());
    const s = sub(['--url', broker.url, '--count', '1', 'alarm/#']);
    await until(() => broker.hub.inspect.holders('alarm/#').length > 0, 'the subscription', 15_000);
    const [link] = broker.hub.inspect.holders('alarm/#');
    // A listener's only inbound traffic is its pongs: each moves lastSeen.
    const from = Date.now();
    const pongs = new Set([link!.lastSeen]);
    await until(() => pongs.add(link!.lastSeen).size > 3 && Date.now() - from > 3 * (idle.idleMs + idle.idleGraceMs), 'three pongs', 15_000);
    // Idle (no application frames) but never closed: the same connection is still subscribed.
    expect(link!.state).toBe('idle');
    expect([...broker.hub.inspect.holders('alarm/#')]).toEqual([link]);
    const writer = new SwitchboardClient({ url: broker.url });
    cleanup.push(() => writer.close());
    await writer.publish('alarm/boiler', 'hot');
    expect(await s.exited).toBe(0);
    expect(JSON.parse(s.out.stdout.trim())).toMatchObject({ topic: 'alarm/boiler', data: 'hot' });
    expect(s.out.stderr).toBe(''); // no reconnect, no timeout
  });

  it('reconnects and resumes across a broker restart, saying recovered:false on stderr', { timeout: 45_000 }, async () => {
    const first = await startTestBroker();
    const port = first.port;
    const s = sub(['--url', first.url, '--count', '3', 'feed/a', 'feed/+']);
    await until(() => first.hub.inspect.holders('feed/+').length > 0 && first.hub.inspect.holders('feed/a').length > 0, 'the subscriptions', 15_000);
    const w1 = new SwitchboardClient({ url: first.url });
    await w1.publish('feed/a', 'before');
    await until(() => s.out.stdout.includes('before'), 'the first message');
    w1.close();
    await first.close();
    await until(() => s.out.stderr.includes('reconnecting'), 'the reconnecting line');
    const second = await startTestBroker({ port });
    cleanup.push(() => second.close());
    await until(() => s.out.stderr.includes('not recovered'), 'the not-recovered line', 15_000);
    expect(s.out.stderr).toMatch(/switchboard sub: feed\/a: not recovered after reconnecting \(recovered:false, (epoch_changed|unknown_position)\)/);
    await until(() => second.hub.inspect.holders('feed/+').length > 0, 'resubscribed');
    const w2 = new SwitchboardClient({ url: second.url });
    cleanup.push(() => w2.close());
    await w2.publish('feed/a', 'after 1'); // seq 1 again: a new numbering, not a duplicate
    await w2.publish('feed/b', 'after 2');
    expect(await s.exited).toBe(0);
    const lines = s.out.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.topic, l.seq, l.data])).toEqual([
      ['feed/a', 1, 'before'],
      ['feed/a', 1, 'after 1'],
      ['feed/b', 1, 'after 2'],
    ]);
  });

  it('--since with a position the broker cannot vouch for says so at once, then prints what comes', { timeout: 45_000 }, async () => {
    const broker = await startTestBroker();
    cleanup.push(() => broker.close());
    const w = new SwitchboardClient({ url: broker.url });
    cleanup.push(() => w.close());
    for (const n of [1, 2, 3]) await w.publish('rowdata/pump/42', n);
    // An epoch of another life (a restarted broker), and a position without an epoch: neither can be checked.
    const stale = sub(['--url', broker.url, '--since', '2', '--epoch', 'gone.1', '--count', '1', 'rowdata/pump/42']);
    const bare = sub(['--url', broker.url, '--since', '2', '--count', '1', 'rowdata/pump/42']);
    await until(() => stale.out.stderr.includes('not recovered') && bare.out.stderr.includes('not recovered'), 'both verdicts', 15_000);
    expect(stale.out.stderr).toBe('switchboard sub: rowdata/pump/42: not recovered (recovered:false, epoch_changed): messages may be missing on rowdata/pump/42 (epoch_changed)\n');
    expect(bare.out.stderr).toBe('switchboard sub: rowdata/pump/42: not recovered (recovered:false, unknown_position): messages may be missing on rowdata/pump/42 (unknown_position)\n');
    await w.publish('rowdata/pump/42', 4);
    expect(await stale.exited).toBe(0);
    expect(await bare.exited).toBe(0);
    for (const s of [stale, bare]) expect(JSON.parse(s.out.stdout)).toMatchObject({ topic: 'rowdata/pump/42', seq: 4, data: 4 });
  });

  it('a refused subscribe (forbidden) is one line on stderr and exit 1', { timeout: 45_000 }, async () => {
    const secret = 'a-secret-long-enough-for-hs256-tokens';
    const broker = await startTestBroker({ authSecret: secret });
    cleanup.push(() => broker.close());
    const token = await new SignJWT({ sub: 'ops', acl: { sub: ['public/#'] } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    const s = sub(['--url', broker.url, '--token', token, 'secret/#']);
    expect(await s.exited).toBe(1);
    expect(s.out.stderr).toMatch(/^switchboard sub: secret\/#: forbidden: [^\n]+\n$/);
  });

  it('a dead URL: one message and exit 1, not a line per retry', { timeout: 45_000 }, async () => {
    const port = await freePort();
    const s = sub(['--url', `ws://127.0.0.1:${port}/ws`, 'a/#']);
    expect(await s.exited).toBe(1);
    expect(s.out.stderr).toMatch(new RegExp(`^switchboard sub: ws://127\\.0\\.0\\.1:${port}/ws: cannot connect \\(1006 [^\\n]*ECONNREFUSED[^\\n]*\\)\\n$`));
  });

  it.skipIf(!haveScript)('in a terminal, a dead URL is one status line counting down, until the broker is there', { timeout: 45_000 }, async () => {
    const port = await freePort();
    const t = inTerminal(`${process.execPath} --import tsx src/cli.ts sub --url ws://127.0.0.1:${port}/ws --count 1 news`);
    // The countdown is redrawn in place: several frames of it, not one line each.
    await until(() => (t.screen().match(/retrying in \d+s/g) ?? []).length >= 3, 'the countdown', 20_000);
    expect(t.screen()).toMatch(/\r\x1b\[2Kswitchboard sub: offline \(1006 [^\n]*\) · retrying in \d+s/);
    expect(t.screen()).not.toContain('\n');
    const broker = await startTestBroker({ port });
    cleanup.push(() => broker.close());
    await until(() => broker.hub.inspect.holders('news').length > 0, 'the subscription', 20_000);
    const w = new SwitchboardClient({ url: broker.url });
    cleanup.push(() => w.close());
    await w.publish('news', 'here now');
    expect(await t.exited).toBe(0);
    expect(t.screen()).toMatch(/"data":"here now"/);
  });
});

/** Runs `command` in a pseudo-terminal (stdin and stderr are a terminal); the test reads the screen. */
function inTerminal(command: string) {
  const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { cwd: ROOT, env: { ...process.env, TERM: 'xterm' } });
  let screen = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (screen += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  cleanup.push(() => child.kill());
  return { screen: () => screen, exited };
}

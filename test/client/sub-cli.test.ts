// `switchboard sub` on the client library, as a user runs it: exactly --count messages, and across a broker
// restart it reconnects, says on stderr that the resume was not recovered, and goes on printing.
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchboardClient } from '../../src/client/index.js';
import { startTestBroker } from '../helpers/broker.js';
import { until } from './proxy.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function sub(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'sub', ...args], { cwd: ROOT });
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
    await until(() => broker.hub.index.subscribersOf('burst/#').size > 0, 'the subscription', 15_000);
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
    const idle = { idleMs: 150, idleGraceMs: 100, heartbeatMs: 100 };
    const broker = await startTestBroker(idle);
    cleanup.push(() => broker.close());
    const s = sub(['--url', broker.url, '--count', '1', 'alarm/#']);
    await until(() => broker.hub.index.subscribersOf('alarm/#').size > 0, 'the subscription', 15_000);
    const [link] = broker.hub.index.subscribersOf('alarm/#');
    await new Promise((r) => setTimeout(r, 3 * (idle.idleMs + idle.idleGraceMs) + 200));
    // Idle (no application frames) but never closed: the same connection is still subscribed.
    expect(link!.state).toBe('idle');
    expect([...broker.hub.index.subscribersOf('alarm/#')]).toEqual([link]);
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
    await until(() => first.hub.index.subscribersOf('feed/+').size > 0 && first.hub.index.subscribersOf('feed/a').size > 0, 'the subscriptions', 15_000);
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
    await until(() => second.hub.index.subscribersOf('feed/+').size > 0, 'resubscribed');
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
});

// `switchboard pub` and `switchboard sub` as a user runs them: real processes against a real broker.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';

const ROOT = new URL('..', import.meta.url).pathname;

/** Runs the CLI without blocking: the broker under test lives in this very process. */
function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ apiKey: 'k3y' });
});
afterAll(() => broker.close());

describe('switchboard pub / sub', () => {
  it('sub prints what pub publishes, as JSON lines', { timeout: 45_000 }, async () => {
    const sub = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'sub', '--url', broker.url, '--count', '2', 'alarm/#'], { cwd: ROOT });
    let out = '';
    let err = '';
    sub.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    sub.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const exited = new Promise<number | null>((resolve) => sub.on('exit', resolve));
    // Wait until the subscriber holds its filter.
    for (let i = 0; i < 150 && broker.hub.index.subscribersOf('alarm/#').size === 0; i++) await new Promise((r) => setTimeout(r, 100));

    const json = await cli(['pub', '--url', broker.httpUrl, '--api-key', 'k3y', 'alarm/boiler/7', '{"level":"high"}']);
    expect(json.status, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ seq: 1, delivered: 1 });
    const text = await cli(['pub', '--url', broker.httpUrl, '--api-key', 'k3y', 'alarm/boiler/7', 'pressure dropping']);
    expect(text.status, text.stderr).toBe(0);

    expect(await exited).toBe(0);
    expect(err).toBe('');
    const lines = out.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toMatchObject([
      { op: 'msg', topic: 'alarm/boiler/7', seq: 1, data: { level: 'high' } },
      { op: 'msg', topic: 'alarm/boiler/7', seq: 2, data: 'pressure dropping' },
    ]);
  });

  it('bad input is a message on stderr and a non-zero exit', { timeout: 45_000 }, async () => {
    // Five processes at once: each one's start-up time dominates, not the broker.
    const [badTopic, noKey, missing, badFilter, nobody] = await Promise.all([
      cli(['pub', '--url', broker.httpUrl, 'alarm/#', '1']),
      cli(['pub', '--url', broker.httpUrl, 'alarm/x', '1']),
      cli(['pub', '--url', broker.httpUrl, 'alarm/x']),
      cli(['sub', '--url', broker.url, 'a/#/b']),
      cli(['sub', '--url', 'ws://127.0.0.1:1/ws', 'a']),
    ]);
    expect(badTopic.status).toBe(2);
    expect(badTopic.stderr).toContain("bad topic 'alarm/#'");
    expect(noKey.status).toBe(1);
    expect(noKey.stderr).toContain('HTTP 401');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('pub needs <topic> and <data>');
    expect(badFilter.status).toBe(2);
    expect(badFilter.stderr).toContain("bad filter 'a/#/b'");
    expect(nobody.status).toBe(1);
    expect(nobody.stderr).toContain('switchboard sub: ws://127.0.0.1:1/ws');
  });
});

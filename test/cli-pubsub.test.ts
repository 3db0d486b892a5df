// `switchboard pub` and `switchboard sub` as a user runs them: real processes against a real broker.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { pubCommand, subCommand } from '../src/cli/pubsub.js';
import { ConfigError } from '../src/config.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { cliArgs } from './helpers/cli.js';

const ROOT = new URL('..', import.meta.url).pathname;

/** Runs the CLI without blocking: the broker under test lives in this very process. */
function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...cliArgs(), ...args], { cwd: ROOT });
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
    const sub = spawn(process.execPath, [...cliArgs(), 'sub', '--url', broker.url, '--count', '2', 'alarm/#'], { cwd: ROOT });
    let out = '';
    let err = '';
    sub.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    sub.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const exited = new Promise<number | null>((resolve) => sub.on('exit', resolve));
    // Wait until the subscriber holds its filter.
    for (let i = 0; i < 150 && broker.hub.inspect.holders('alarm/#').length === 0; i++) await new Promise((r) => setTimeout(r, 100));

    const json = await cli(['pub', '--url', broker.httpUrl, '--api-key', 'k3y', 'alarm/boiler/7', '{"level":"high"}']);
    expect(json.status, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ seq: 1, epoch: expect.any(String), delivered: 1 });
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

  it('bad input is a message on stderr and a non-zero exit', async () => {
    // In-process (start-up time of five processes would dominate); cli.ts maps ConfigError to exit code 2.
    const errors: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void errors.push(args.join(' ')));
    try {
      await expect(pubCommand(['--url', broker.httpUrl, 'alarm/#', '1'])).rejects.toThrow(ConfigError);
      await expect(pubCommand(['--url', broker.httpUrl, 'alarm/#', '1'])).rejects.toThrow("bad topic 'alarm/#': a publish topic cannot contain wildcards");
      await expect(pubCommand(['--url', broker.httpUrl, 'alarm/x'])).rejects.toThrow(/pub needs <topic> and <data>/);
      await expect(subCommand(['--url', broker.url, 'a/#/b'])).rejects.toThrow(/bad filter 'a\/#\/b'/);
      await expect(subCommand(['--url', broker.url, '--count', 'many', 'a'])).rejects.toThrow(/--count must be a whole number/);
      // Past 2^53 no seq is exact: a usage error, not the client library's stack trace (found by a review helper).
      await expect(subCommand(['--url', broker.url, '--since', '9007199254740993', 'a/b'])).rejects.toThrow(/--since must be a whole number from 0 to 9007199254740991/);
      await expect(subCommand(['--url', broker.url, '--epoch', 'k3x9.1', 'a'])).rejects.toThrow(/--epoch goes with --since above 0/);
      await expect(subCommand(['--url', '/ws', 'a'])).rejects.toThrow(/--url "\/ws": not an absolute URL/);

      expect(await pubCommand(['--url', broker.httpUrl, 'alarm/x', '1'])).toBe(1);
      expect(errors.pop()).toMatch(/^switchboard pub: HTTP 401: .*unauthorized/);
      expect(await subCommand(['--url', 'ws://127.0.0.1:1/ws', 'a'])).toBe(1);
      expect(errors.pop()).toContain('switchboard sub: ws://127.0.0.1:1/ws');
    } finally {
      spy.mockRestore();
    }
  });

  it('a ConfigError from a command exits 2 with the message on stderr', { timeout: 45_000 }, async () => {
    const r = await cli(['pub', 'alarm/#', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("switchboard: bad topic 'alarm/#'");
  });
});

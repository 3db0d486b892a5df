// The CLI on bad input: a URL flag that is no URL is a usage error at start (exit 2, one line: it was a stack trace,
// or for --inspect a broker running on without inspection), `check` against a server that is no broker says so and
// exits 2 (it hung: its socket kept the process alive), a --timeout-ms no timer holds is refused, and `pub` with a bad
// --url is bad input (2), not "cannot reach" (1).
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { cliArgs } from './helpers/cli.js';

const ROOT = new URL('..', import.meta.url).pathname;

/** The CLI run to its exit (or killed after `killMs`): its code and what it printed. */
const cli = (args: string[], killMs = 10_000) =>
  new Promise<{ status: number | null; stdout: string; stderr: string; killed: boolean }>((resolve, reject) => {
    const child = spawn(process.execPath, [...cliArgs(), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '', killed: false };
    const timer = setTimeout(() => {
      out.killed = true;
      child.kill('SIGKILL');
    }, killMs);
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out.stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out.stderr += c));
    child.on('error', reject);
    child.on('close', (status) => (clearTimeout(timer), resolve({ status, ...out })));
  });

const SERVE = ['serve', '--port', '0', '--tcp-port', '0', '--log-level', 'warn'];

describe('serve: URL flags', () => {
  it('a --hook-url that is no URL is a usage error (exit 2, one line), not a fatal stack trace', async () => {
    for (const url of ['http://localhost:99999', 'http://exa mple.com']) {
      const r = await cli([...SERVE, '--hook-url', url]);
      expect(r.stderr).not.toContain('    at ');
      expect(r.stderr).toContain('--hook-url');
      expect(r.status).toBe(2);
    }
  });

  it('an --inspect URL that is no URL is refused at start (exit 2), not logged while the broker runs on', async () => {
    const r = await cli([...SERVE, '--inspect', 'ws://localhost:99999'], 4000);
    expect(r.killed).toBe(false);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--inspect');
  });
});

describe('check: a WebSocket server that is not a broker', () => {
  let wss: WebSocketServer;
  let port: number;
  beforeAll(async () => {
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1' }); // accepts, never says hello
    await new Promise((r) => wss.once('listening', r));
    port = (wss.address() as { port: number }).port;
  });
  afterAll(() => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });

  it('exits 2 after saying there is no hello, instead of hanging', async () => {
    const r = await cli(['check', '--url', `ws://127.0.0.1:${port}`, '--runs', '1', '--timeout-ms', '300'], 8000);
    expect(r.stderr).toContain('hello');
    expect(r.killed).toBe(false);
    expect(r.status).toBe(2);
  });

  it('--timeout-ms above what a timer holds is a usage error, not a 1 ms timeout reported as "no connection within 99999999999 ms"', async () => {
    const r = await cli(['check', '--url', `ws://127.0.0.1:${port}`, '--runs', '1', '--timeout-ms', '99999999999'], 8000);
    expect(r.stderr).not.toContain('within 99999999999 ms');
    expect(r.killed).toBe(false);
    expect(r.status).toBe(2);
  });
});

describe('pub: a bad --url', () => {
  it('is bad input: exit 2 (docs/usage.md), not "cannot reach" and 1', async () => {
    for (const url of ['foo', 'ftp://x']) {
      const r = await cli(['pub', '--url', url, 't', '1']);
      expect(r.stderr).not.toContain('cannot reach');
      expect(r.status).toBe(2);
    }
  });
});

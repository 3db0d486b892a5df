// `switchboard serve` when a port is taken: it exits non-zero naming the port and its flag, with nothing left
// listening (the HTTP server it had already opened is closed again).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { cliArgs } from './helpers/cli.js';

const cwd = new URL('..', import.meta.url).pathname;
let holder: Server | undefined;
afterEach(() => holder?.close());

/** A port held by this test process, as another program would hold it. */
async function holdPort(): Promise<number> {
  holder = createServer();
  holder.listen(0, '127.0.0.1');
  await once(holder, 'listening');
  return (holder.address() as { port: number }).port;
}

/** Runs `switchboard serve args…` to its exit: exit code, stderr and the JSON log lines. */
async function serve(args: string[]): Promise<{ code: number | null; stderr: string; logs: { msg: string }[] }> {
  const child = spawn(process.execPath, [...cliArgs(), 'serve', '--log-level', 'info', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  const logs = stdout.split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l)];
    } catch {
      return [];
    }
  });
  return { code, stderr, logs };
}

describe('serve with a port already in use', () => {
  it('--tcp-port taken: exits 1 naming the port and --tcp-port, after closing the HTTP server it had opened', { timeout: 20_000 }, async () => {
    const port = await holdPort();
    const run = await serve(['--port', '0', '--tcp-port', String(port)]);
    // Killed by the test's timer (still running with HTTP half-started) reads as code null.
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`--tcp-port ${port}`);
    expect(run.stderr).toMatch(/already in use/);
    // The HTTP server had started, then was closed again.
    expect(run.logs.some((l) => l.msg === 'switchboard listening')).toBe(true);
  });

  it('--port taken: exits 1 naming the port and --port', { timeout: 20_000 }, async () => {
    const port = await holdPort();
    const run = await serve(['--port', String(port), '--tcp-port', '0']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`--port ${port}`);
    expect(run.stderr).toMatch(/already in use/);
  });
});

describe('serve says where to look', () => {
  it('logs the chat page, /inspect and /metrics as URLs a person opens, and each answers', { timeout: 20_000 }, async () => {
    const child = spawn(process.execPath, [...cliArgs(), 'serve', '--port', '0', '--tcp-port', '0'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      const line = await new Promise<{ msg: string; chat: string; inspect: string; metrics: string; websocket: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no 'open' line in: ${stdout}`)), 15_000);
        child.stdout.on('data', () => {
          for (const l of stdout.split('\n')) {
            if (!l.includes('"chat"')) continue;
            clearTimeout(timer);
            resolve(JSON.parse(l));
          }
        });
      });
      expect(line.msg).toBe(`open ${line.chat} (chat), ${line.inspect} (live actors), ${line.metrics} (metrics); WebSocket ${line.websocket}`);
      expect(line.chat).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const page = await fetch(line.chat);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect((await fetch(line.inspect)).status).toBe(200);
      expect(await (await fetch(line.metrics)).text()).toContain('switchboard_connections');
      expect(line.websocket).toBe(line.chat.replace('http:', 'ws:') + 'ws');
    } finally {
      child.kill();
    }
  });
});

describe('--version', () => {
  it('answers the same before or after any command, and matches the package', { timeout: 30_000 }, async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [...cliArgs(), ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d));
        child.on('exit', (code) => resolve({ code, out }));
      });
    const runs = await Promise.all([['--version'], ['sub', '--version'], ['check', '--version'], ['serve', '--version']].map(run));
    for (const r of runs) expect(r).toEqual({ code: 0, out: `switchboard ${version}\n` });
  });
});

// `switchboard serve` when a port is taken: it exits non-zero naming the port and its flag, with nothing left
// listening (the HTTP server it had already opened is closed again).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';

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
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--log-level', 'info', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
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

// Running documented commands as a reader would type them: `switchboard` is this checkout's CLI (a shim on PATH),
// the broker's documented addresses (localhost:8080, port 8000, redis://…) are the test's own, and long-running
// commands (serve, sub) run in the background until the block is done.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testCli } from '../helpers/cli.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A directory with a `switchboard` command running this checkout's CLI. */
export function switchboardShim(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'sb-docs-bin-'));
  const file = join(dir, 'switchboard');
  writeFileSync(file, `#!/bin/sh\nexec '${process.execPath}' '${testCli()}' "$@"\n`);
  chmodSync(file, 0o755);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Where documented addresses point in this run. */
export interface Addresses {
  port: number;
  tcpPort?: number;
  redisUrl?: string;
}

/** `text` with the documented broker addresses replaced by this run's. */
export function localize(text: string, a: Addresses): string {
  let out = text
    .replace(/\b(?:localhost|127\.0\.0\.1|broker):8080\b/g, `127.0.0.1:${a.port}`)
    .replace(/\bws:\/\/127\.0\.0\.1:8080\b/g, `ws://127.0.0.1:${a.port}`);
  if (a.tcpPort !== undefined) out = out.replace(/\b(nc (?:localhost|127\.0\.0\.1)) 8000\b/g, `$1 ${a.tcpPort}`);
  if (a.redisUrl !== undefined) out = out.replace(/redis:\/\/[\w.-]+:\d+|unix:\/\/\/[\w./-]+|redis\+sentinel:\/\/[\w.:,-]+\/[\w.-]+/g, a.redisUrl);
  return out;
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command` in bash (cwd: the repository) to its end. */
export function sh(command: string, env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', command], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`\`${command}\` did not finish within ${timeoutMs} ms; stdout: ${stdout.slice(-500)} stderr: ${stderr.slice(-500)}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A command left running in the background (a broker, a subscriber). */
export class Service {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  /** Runs `command` after the shell lines of `prelude` (e.g. `ulimit`); the command replaces the shell, so signals reach it. */
  constructor(
    readonly command: string,
    env: NodeJS.ProcessEnv,
    prelude: string[] = [],
  ) {
    // `exec env A=1 cmd`: the assignments before a command go to it, and it keeps the shell's process id.
    const last = /^[A-Za-z_][A-Za-z0-9_]*=/.test(command) ? `exec env ${command}` : `exec ${command}`;
    this.child = spawn('bash', ['-c', [...prelude, last].join('; ')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (c: string) => (this.stdout += c));
    this.child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr += c));
    // 'close', not 'exit': by then everything it wrote has been read (its last log lines included).
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits until `cond` holds while the command runs; fails (with its output) if it exits or the time runs out. */
  async until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await cond()) return;
      if (!this.running) throw new Error(`\`${this.command}\` exited (${this.child.exitCode}) before ${what}; stderr: ${this.stderr.slice(-800)}`);
      if (Date.now() > deadline) throw new Error(`\`${this.command}\`: no ${what} within ${timeoutMs} ms; stderr: ${this.stderr.slice(-800)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** SIGTERM, then its exit code. */
  async stop(): Promise<number | null> {
    if (this.running) this.child.kill('SIGTERM');
    return this.exited;
  }
}

export { freePort } from '../helpers/ports.js';


/** True once something answers HTTP on `port`. */
export async function answers(port: number, path = '/healthz'): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}${path}`);
    return true;
  } catch {
    return false;
  }
}

/** The lines of a block joined where a line ends in `\` (a command continued), comments and blank lines left out. */
export function commandLines(text: string): string[] {
  return text
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

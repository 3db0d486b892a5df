// A broker in a child process (`tsx src/cli.ts serve …`), for tests of signals and process exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cliArgs } from './cli.js';
import { PROCESS_START_MS } from './waits.js';

export interface ChildBroker {
  child: ChildProcess;
  port: number;
}

/**
 * Starts `switchboard serve` with `args` (in `env`) and resolves once it logs `ready` (by default its HTTP port's line,
 * which comes before the TCP and MQTT listeners': wait for 'mqtt listening' to connect over MQTT).
 */
export function spawnBroker(args: string[], ready = 'switchboard listening', env: NodeJS.ProcessEnv = process.env): Promise<ChildBroker> {
  const child = spawn(process.execPath, [...cliArgs(), 'serve', '--port', '0', '--tcp-port', '0', '--log-level', 'info', ...args], {
    cwd: new URL('../..', import.meta.url).pathname,
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  const lines = createInterface({ input: child.stdout! });
  let port = 0;
  return new Promise<ChildBroker>((resolve, reject) => {
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line);
        if (entry.msg === 'switchboard listening') port = entry.port;
        if (entry.msg === ready) resolve({ child, port });
      } catch {
        /* not a log line */
      }
    });
    child.once('exit', (code) => reject(new Error(`broker exited early with ${code}`)));
  });
}

export type LogLine = Record<string, any> & { msg: string; pid: number };

export interface ChildWorkers {
  child: ChildProcess;
  /** The shared ports, from the primary's `workers ready` line. */
  port: number;
  tcpPort: number;
  /** Worker pids when all were first ready. */
  pids: number[];
  /** Every JSON log line of the primary and its workers (one stdout), in order. */
  lines: LogLine[];
  /** Everything written to stderr. */
  stderr(): string;
  /** The first log line (seen or to come) matching `pred`. */
  line(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** The pid of the worker that logged `connect` for client `id`. */
  pidOf(id: string): Promise<number>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `switchboard serve --workers N …` and resolves once the primary logs that every worker is ready. */
export function spawnWorkers(args: string[]): Promise<ChildWorkers> {
  const child = spawn(process.execPath, [...cliArgs(), 'serve', '--port', '0', '--tcp-port', '0', '--log-level', 'info', ...args], {
    cwd: new URL('../..', import.meta.url).pathname,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let entry: LogLine;
    try {
      entry = JSON.parse(text);
    } catch {
      return; // not a log line
    }
    lines.push(entry);
    for (const w of waiters.filter((w) => w.pred(entry))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(entry);
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const line = (pred: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> => {
    const seen = lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${err.slice(-500)}`)), timeoutMs);
      waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  };
  const ready = line((l) => l.msg === 'workers ready', PROCESS_START_MS);
  return Promise.race([
    ready.then((r) => ({
      child,
      port: r.port as number,
      tcpPort: r.tcpPort as number,
      pids: r.pids as number[],
      lines,
      stderr: () => err,
      line,
      pidOf: async (id: string) => (await line((l) => l.msg === 'connect' && l.client === id)).pid,
      exited,
    })),
    exited.then(({ code }) => Promise.reject(new Error(`workers exited early with ${code}: ${err.slice(-500)}`))),
  ]).catch((e: unknown) => {
    // Not ready in time: the process is the test's to end, or it outlives the run (its workers go with it: a
    // worker exits when its primary's channel closes).
    child.kill('SIGKILL');
    throw e;
  });
}

// A broker in a child process (`tsx src/cli.ts serve …`), for tests of signals and process exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface ChildBroker {
  child: ChildProcess;
  port: number;
}

/** Starts `switchboard serve` with `args` and resolves once it logs its port. */
export function spawnBroker(args: string[]): Promise<ChildBroker> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--port', '0', '--tcp-port', '0', '--log-level', 'info', ...args], {
    cwd: new URL('../..', import.meta.url).pathname,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = createInterface({ input: child.stdout! });
  return new Promise<ChildBroker>((resolve, reject) => {
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line);
        if (entry.msg === 'switchboard listening') resolve({ child, port: entry.port });
      } catch {
        /* not a log line */
      }
    });
    child.once('exit', (code) => reject(new Error(`broker exited early with ${code}`)));
  });
}

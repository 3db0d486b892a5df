// Starts a backend process (the scriptable test backend, or examples/backend) and knows its address.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface BackendProcess {
  child: ChildProcess;
  port: number;
  url: string;
  /** Sets how each hook answers (test/helpers/hook-backend.mjs) and clears the recorded calls. */
  script(rules: Record<string, unknown>): Promise<void>;
  calls(): Promise<{ kind: string; body: any; signed: boolean | null; at: number }[]>;
  stop(): Promise<void>;
  /** Every line it printed after its first. */
  output: string[];
}

export function startBackend(file = 'test/helpers/hook-backend.mjs', env: Record<string, string> = {}): Promise<BackendProcess> {
  const child = spawn(process.execPath, [file], { cwd: new URL('../..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const lines = createInterface({ input: child.stdout! });
  const output: string[] = [];
  return new Promise((resolve, reject) => {
    lines.once('line', (line) => {
      lines.on('line', (l) => output.push(l));
      const { port } = JSON.parse(line) as { port: number };
      const url = `http://127.0.0.1:${port}`;
      resolve({
        child,
        port,
        url,
        output,
        async script(rules) {
          await fetch(`${url}/control`, { method: 'POST', body: JSON.stringify(rules) });
        },
        async calls() {
          return (await fetch(`${url}/calls`)).json() as Promise<any[]>;
        },
        stop: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGKILL');
          }),
      });
    });
    child.once('exit', (code) => reject(new Error(`backend exited early with ${code}`)));
  });
}

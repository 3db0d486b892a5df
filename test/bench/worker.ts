// A forked load-generator process of the benches (run.ts, cluster.ts): messages in, answers matched by type.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export class Worker {
  readonly child: ChildProcess;
  private waiting = new Map<string, (m: any) => void>();
  constructor(file: string) {
    this.child = fork(HERE + file, [], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: any) => {
      const w = this.waiting.get(m.type);
      if (w) {
        this.waiting.delete(m.type);
        w(m);
      }
    });
  }
  ask<T = any>(msg: object, answer: string, timeoutMs = 120_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`worker did not answer ${answer} in ${timeoutMs} ms`)), timeoutMs);
      this.waiting.set(answer, (m) => {
        clearTimeout(t);
        resolve(m);
      });
      this.child.send(msg);
    });
  }
  close(): void {
    if (this.child.connected) this.child.send({ type: 'close' });
    setTimeout(() => this.child.kill('SIGKILL'), 2000).unref();
  }
}

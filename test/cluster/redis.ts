// A redis-server of the test's own on a free port (never the one on 6379), so tests can kill and restart it.
// Missing redis-server skips the cluster tests with a printed reason; under CI (CI=true) that is an error,
// because CI must run them (.ci/run installs it).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { defaults, type Config } from '../../src/config.js';
import { startBroker } from '../../src/broker.js';
import { createLogger } from '../../src/log.js';
import type { TestBroker } from '../helpers/broker.js';

export const REDIS_SERVER = '/usr/bin/redis-server';
export const haveRedis = existsSync(REDIS_SERVER);

/** Call at the top of a cluster test file: prints why its tests are skipped, or fails under CI. */
export function requireRedis(testName: string): boolean {
  if (haveRedis) return true;
  const reason = `${testName}: skipped, ${REDIS_SERVER} is missing (apt-get install -y redis-server)`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must run the cluster tests`);
  console.warn(reason);
  return false;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export class TestRedis {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<TestRedis> {
    const r = new TestRedis(await freePort());
    await r.restart();
    return r;
  }

  /** (Re)starts the server on the same port, empty (no persistence: a restart loses everything). */
  async restart(): Promise<void> {
    const child = spawn(REDIS_SERVER, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out.slice(-500)}`)));
    });
  }

  /** Kills the server (SIGKILL) and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }
}

/** A broker of the cluster on `redis`, in this process, on free ports. */
export async function startNode(redis: TestRedis, overrides: Partial<Config> = {}): Promise<TestBroker> {
  const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', redisUrl: redis.url, ...overrides };
  const broker = await startBroker(config, { log: createLogger(config.logLevel, false), tcpPort: 0 });
  return Object.assign(broker, { url: `ws://127.0.0.1:${broker.port}/ws`, httpUrl: `http://127.0.0.1:${broker.port}` });
}

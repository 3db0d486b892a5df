// Workers: `serve --workers N` forks N broker processes sharing --port and --tcp-port (node:cluster hands each
// accepted socket to one worker); the primary runs no broker, restarts a worker that dies (with backoff) and, on
// SIGTERM/SIGINT, drains every worker and exits. Each worker is a node of the Redis cluster engine.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { Config } from '../config.js';

/** Messages between the primary and a worker over the cluster IPC channel. */
export type WorkerMessage = { switchboard: 'ready'; port: number; tcpPort: number } | { switchboard: 'shutdown' };

/** First restart delay; doubled for each further crash of a worker that did not live STABLE_MS. */
export const RESTART_BASE_MS = 200;
export const RESTART_MAX_MS = 30_000;
/** How long past --close-timeout-ms a draining worker may take before the primary kills it. */
export const DRAIN_SLACK_MS = 30_000;
/** A worker that lived this long counts as healthy: its slot's backoff starts over. */
export const STABLE_MS = 30_000;

/** The delay before restarting a worker after `crashes` quick crashes in a row (1 = the first). */
export function restartDelay(crashes: number): number {
  return Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** Math.max(0, crashes - 1));
}

/** This process is a worker forked by `serve --workers N`. */
export function isWorker(): boolean {
  return cluster.isWorker;
}

/** Fields every log line of this process carries: the cluster worker id in a worker, nothing otherwise. */
export function workerFields(): { worker?: number } {
  return cluster.worker ? { worker: cluster.worker.id } : {};
}

/** In a worker: tells the primary the broker listens. */
export function reportReady(port: number, tcpPort: number): void {
  const message: WorkerMessage = { switchboard: 'ready', port, tcpPort };
  process.send?.(message);
}

/** In a worker: calls `drain` when the primary asks the worker to shut down. */
export function onShutdownRequest(drain: () => void): void {
  process.on('message', (message: WorkerMessage) => {
    if (message?.switchboard === 'shutdown') drain();
  });
}

/** One of the N places a worker runs in; a restart refills the same slot. */
interface Slot {
  index: number;
  worker: Worker | undefined;
  startedAt: number;
  ready: boolean;
  /** Crashes in a row of workers that did not live STABLE_MS. */
  crashes: number;
  restart: NodeJS.Timeout | undefined;
}

/** The primary of `serve --workers N`: resolves with the process's exit code once every worker is gone. */
export class Primary {
  private readonly slots: Slot[];
  private readonly bySlot = new Map<Worker, Slot>();
  private phase: 'starting' | 'running' | 'stopping' = 'starting';
  private exitCode = 0;
  private signals = 0;
  private done!: (code: number) => void;
  private readonly finished = new Promise<number>((resolve) => (this.done = resolve));
  private deadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.slots = Array.from({ length: config.workers }, (_, index) => ({ index, worker: undefined, startedAt: 0, ready: false, crashes: 0, restart: undefined }));
  }

  run(): Promise<number> {
    cluster.on('exit', (worker, code, signal) => this.exited(worker, code, signal));
    cluster.on('message', (worker, message: WorkerMessage) => {
      if (message?.switchboard === 'ready') this.ready(worker, message);
    });
    process.on('SIGINT', () => this.signal('SIGINT'));
    process.on('SIGTERM', () => this.signal('SIGTERM'));
    this.log.info({ workers: this.config.workers }, 'primary starting workers');
    for (const slot of this.slots) this.fork(slot);
    return this.finished;
  }

  private fork(slot: Slot): void {
    slot.restart = undefined;
    const worker = cluster.fork();
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.ready = false;
    this.bySlot.set(worker, slot);
    this.log.info({ worker: worker.id, workerPid: worker.process.pid, slot: slot.index }, 'worker started');
  }

  private ready(worker: Worker, message: { port: number; tcpPort: number }): void {
    const slot = this.bySlot.get(worker);
    if (!slot) return;
    slot.ready = true;
    this.log.info({ worker: worker.id, workerPid: worker.process.pid, slot: slot.index, port: message.port, tcpPort: message.tcpPort }, 'worker ready');
    if (this.phase === 'stopping') return this.ask(worker);
    if (this.phase === 'starting' && this.slots.every((s) => s.ready)) {
      this.phase = 'running';
      const pids = this.slots.map((s) => s.worker!.process.pid);
      this.log.info({ workers: this.slots.length, port: message.port, tcpPort: message.tcpPort, pids }, 'workers ready');
    }
  }

  private exited(worker: Worker, code: number | null, signal: string | null): void {
    const slot = this.bySlot.get(worker);
    if (!slot) return;
    this.bySlot.delete(worker);
    slot.worker = undefined;
    const fields = { worker: worker.id, workerPid: worker.process.pid, slot: slot.index, code, signal };
    if (this.phase === 'stopping') {
      // A worker still starting is terminated (ask): ended by that SIGTERM, it did what it was asked, not fail.
      const terminatedAsAsked = code === null && signal === 'SIGTERM' && !slot.ready;
      if (code !== 0 && !terminatedAsAsked) this.exitCode = 1;
      this.log.info(fields, 'worker stopped');
      return this.finishIfEmpty();
    }
    if (this.phase === 'starting' && !slot.ready) {
      // A worker that cannot start (port taken, Redis unreachable) would fail the same way again: give up.
      this.log.error(fields, 'worker exited before it listened: stopping');
      this.exitCode = code === 2 ? 2 : 1;
      return this.stop();
    }
    const lived = Date.now() - slot.startedAt;
    slot.crashes = lived >= STABLE_MS ? 1 : slot.crashes + 1;
    const delayMs = restartDelay(slot.crashes);
    this.log.warn({ ...fields, livedMs: lived, restartInMs: delayMs }, `worker died (${signal ?? `exit code ${code}`}): restarting in ${delayMs} ms`);
    slot.restart = setTimeout(() => this.fork(slot), delayMs);
  }

  private signal(signal: string): void {
    if (++this.signals > 1) {
      this.log.warn({ signal }, 'second signal: killing the workers and exiting now');
      for (const slot of this.slots) slot.worker?.process.kill('SIGKILL');
      process.exit(1);
    }
    this.log.info({ signal }, 'shutdown requested: draining every worker');
    this.stop();
  }

  /** Stops restarting, asks every worker to drain, and bounds how long that may take. */
  private stop(): void {
    if (this.phase === 'stopping') return;
    this.phase = 'stopping';
    for (const slot of this.slots) {
      clearTimeout(slot.restart);
      slot.restart = undefined;
      if (slot.worker) this.ask(slot.worker);
    }
    // A worker's close handshakes are bounded by --close-timeout-ms; announcing thousands of leaves to Redis is not
    // (a worker of 12,000 clients on a busy machine took over 10 s): generous slack, then it is cut.
    this.deadline = setTimeout(() => {
      for (const slot of this.slots) {
        if (!slot.worker) continue;
        this.log.warn({ worker: slot.worker.id, workerPid: slot.worker.process.pid }, 'worker did not drain in time: killed');
        slot.worker.process.kill('SIGKILL');
      }
      this.exitCode = 1;
    }, this.config.closeTimeoutMs + DRAIN_SLACK_MS);
    this.finishIfEmpty();
  }

  /** A ready worker drains on the IPC request; one still starting has no clients and is simply terminated. */
  private ask(worker: Worker): void {
    const slot = this.bySlot.get(worker);
    if (slot?.ready && worker.isConnected()) {
      const message: WorkerMessage = { switchboard: 'shutdown' };
      worker.send(message);
    } else worker.process.kill('SIGTERM');
  }

  private finishIfEmpty(): void {
    if (this.slots.some((s) => s.worker)) return;
    clearTimeout(this.deadline);
    this.log.info({ code: this.exitCode }, 'every worker stopped');
    this.done(this.exitCode);
  }
}

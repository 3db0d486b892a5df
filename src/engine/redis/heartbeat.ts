// The node's heartbeat key, refreshed from a thread of its own. On the main event loop a busy node (every core
// saturated by connections opening, a burst of deliveries, a long GC) could miss its TTL and be reaped by another
// node while alive: its clients announced as `timeout`, then re-asserted. The thread keeps refreshing while the main
// loop is slow, but only while the main loop shows it still turns (an `alive` message from the node's tick, alive()):
// a node whose main loop is stuck for longer than `hangMs` stops refreshing and is reaped like a dead one. kill -9 ends both.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { RedisOptions } from 'ioredis';
import type { Logger } from '../../log.js';
import type { TlsFiles } from '../../redis-url.js';

export interface HeartbeatOptions {
  /**
   * How the thread reaches Redis: one URL, one Unix socket's or Sentinel's ioredis options (plain data: they cross to
   * the thread), or the seed nodes of a Redis Cluster; over TLS with the PEM files `tls` names (read in the thread, and
   * again when they change, as connections.ts tlsOptions does; through Sentinel for the Sentinels and the master).
   */
  connect: { url: string; tls?: TlsFiles } | { options: RedisOptions; tls?: TlsFiles } | { seeds: { host: string; port: number }[]; password?: string; username?: string; tls?: TlsFiles };
  key: string;
  ttlMs: number;
  tickMs: number;
  /** How long the main loop may go without turning before the heartbeat stops (more than ttlMs). */
  hangMs: number;
  name: string;
  log: Logger;
}

// Plain CommonJS, run with `eval`: it needs no build step and no loader, under tsx, vitest and dist alike.
const THREAD = `
const { parentPort, workerData: w } = require('node:worker_threads');
const { Redis, Cluster } = require(w.ioredis);
const common = { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: w.tickMs, connectionName: w.name,
  retryStrategy: (n) => Math.min(100 * n, 1000), sentinelRetryStrategy: (n) => Math.min(100 * n, 1000) };
// connections.ts tlsOptions, in this thread: the PEM files read again whenever one changes, at each connection.
const freshTls = (files) => {
  if (files.ca === undefined && files.cert === undefined && files.key === undefined) return {};
  const fs = require('node:fs');
  const stampOf = (path) => { if (path === undefined) return ''; const s = fs.statSync(path); return s.ino + ':' + s.size + ':' + s.mtimeMs; };
  const read = (path) => (path === undefined ? undefined : fs.readFileSync(path));
  let stamp = '';
  let context;
  return Object.defineProperty({}, 'secureContext', { enumerable: true, get() {
    try {
      const now = [files.ca, files.cert, files.key].map(stampOf).join(' ');
      if (now !== stamp) { context = require('node:tls').createSecureContext({ ca: read(files.ca), cert: read(files.cert), key: read(files.key) }); stamp = now; }
    } catch {}
    return context;
  } });
};
const tls = w.connect.tls && freshTls(w.connect.tls);
const conn = w.connect.url !== undefined
  ? new Redis(w.connect.url, tls ? { ...common, tls } : common)
  : w.connect.options !== undefined
  ? new Redis({ ...w.connect.options, ...common, ...(tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}) })
  : new Cluster(w.connect.seeds, { enableOfflineQueue: false, clusterRetryStrategy: (n) => Math.min(100 * n, 1000),
      // over TLS, the seeds by the names given (connections.ts keepHostName)
      ...(tls ? { dnsLookup: (name, callback) => callback(null, name) } : {}),
      redisOptions: { ...common, password: w.connect.password, username: w.connect.username, tls } });
conn.on('error', () => {});
let alive = Date.now();
let failed = false;
const beat = () => {
  if (Date.now() - alive > w.hangMs) return;
  conn.set(w.key, '1', 'PX', w.ttlMs).then(() => { failed = false; }, (err) => {
    if (!failed) parentPort.postMessage({ failed: String(err && err.message) });
    failed = true;
  });
};
const timer = setInterval(beat, w.tickMs);
parentPort.on('message', (m) => {
  if (m === 'alive') alive = Date.now();
  else if (m === 'moved') { if (conn.status === 'ready') conn.disconnect(true); }
  else if (m === 'stop') { clearInterval(timer); conn.disconnect(); parentPort.close(); }
});
`;

export class HeartbeatThread {
  private worker: Worker | undefined;

  constructor(private readonly o: HeartbeatOptions) {}

  start(): void {
    const ioredis = createRequire(import.meta.url).resolve('ioredis');
    const { connect, key, ttlMs, tickMs, hangMs, name } = this.o;
    const worker = new Worker(THREAD, { eval: true, workerData: { ioredis, connect, key, ttlMs, tickMs, hangMs, name }, resourceLimits: { maxOldGenerationSizeMb: 32 } });
    worker.unref();
    worker.on('message', (m: { failed?: string }) => this.o.log.debug({ err: m.failed }, 'heartbeat thread: refresh failed (the main loop keeps trying)'));
    // The main loop's own tick refreshes the key too: a thread that fails only loses the margin it adds.
    worker.on('error', (err) => this.o.log.warn({ err: err.message }, 'heartbeat thread failed; the node heartbeats from its main loop only'));
    this.worker = worker;
  }

  /** The main loop turns: called from the node's tick (every tickMs, well under hangMs), not from a timer of its own. */
  alive(): void {
    this.worker?.postMessage('alive');
  }

  /**
   * Sentinel announced a new master: the thread's connection leaves the old one now (it asks the Sentinels again as
   * it reconnects), not when the old master closes it, which one that refuses to be demoted never does.
   */
  moved(): void {
    this.worker?.postMessage('moved');
  }

  /** Stops refreshing; resolves once the thread is gone (before the node deletes its key). */
  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    worker.postMessage('stop');
    await Promise.race([new Promise((r) => worker.once('exit', r)), new Promise((r) => setTimeout(r, 500).unref())]);
    await worker.terminate();
  }
}

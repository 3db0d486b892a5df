// A cluster node in a child process whose main event loop the test can stall: `stall <ms>` on stdin blocks the
// main thread that long (as a saturated core or a long GC would), then prints `{"stalled":<ms>}`; `hold <path>
// <maxMs>` blocks it until the file `path` exists (the test saw what it waited for; at most maxMs), then prints
// `{"stalled":<ms it was stuck>}`. Blocked in Atomics.wait, not a busy loop: to the node it is the same (its
// main loop does not turn; its heartbeat thread goes on), and the suite's two cores are not spent on it. Starts
// with a short node heartbeat so the tests stay quick: argv = redis URL, heartbeat TTL ms, tick ms, hang ms.
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { startBroker } from '../../src/broker.js';
import { defaults, type Config } from '../../src/config.js';
import { RedisEngine } from '../../src/engine/redis/engine.js';
import { createLogger } from '../../src/log.js';

const [url, ttl, tick, hang] = process.argv.slice(2) as [string, string, string, string];
/** Blocks this thread for `ms` (nothing notifies the cell: the wait always runs to its timeout). */
const cell = new Int32Array(new SharedArrayBuffer(4));
const block = (ms: number) => void Atomics.wait(cell, 0, 0, Math.max(0, ms));
const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'warn', redisUrl: url };
const log = createLogger('warn', false);
const broker = await startBroker(config, {
  log,
  tcpPort: 0,
  hubFactory: (o) => new RedisEngine({ ...o, url, maxInflight: config.redisMaxInflight, log, nodeTtlMs: Number(ttl), tickMs: Number(tick), nodeHangMs: Number(hang) }),
});
console.log(JSON.stringify({ port: broker.port }));
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = /^stall (\d+)$/.exec(line.trim());
  const hold = /^hold (\S+) (\d+)$/.exec(line.trim());
  const start = Date.now();
  if (m) {
    // the main loop is stuck
    for (let left = Number(m[1]); left > 0; left = start + Number(m[1]) - Date.now()) block(left);
  } else if (hold) {
    // the main loop is stuck until the test releases it
    const until = start + Number(hold[2]);
    while (!existsSync(hold[1]!) && Date.now() < until) block(Math.min(20, until - Date.now()));
  } else return;
  console.log(JSON.stringify({ stalled: Date.now() - start }));
});

// A cluster node in a child process whose main event loop the test can stall (as a saturated core or a long GC
// would): `hold <path> <maxMs> [<sayMs>]` on stdin blocks its main thread until the file `path` exists (the test saw
// what it waited for; at most maxMs), then prints `{"stalled":<ms it was stuck>}`; with sayMs it also prints
// `{"stuck":<sayMs>}` once stuck that long (written from the blocked thread itself, synchronously: the test learns
// that the fault has lasted that long while it still lasts). Blocked in Atomics.wait, not a busy loop: to the node it
// is the same (its main loop does not turn; its heartbeat thread goes on), and the suite's two cores are not spent on
// it. Starts with a short node heartbeat so the tests stay quick: argv = redis URL, heartbeat TTL ms, tick ms, hang ms.
import { existsSync, writeSync } from 'node:fs';
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
  const hold = /^hold (\S+) (\d+)(?: (\d+))?$/.exec(line.trim());
  if (!hold) return;
  // The main loop is stuck until the test releases it.
  const start = Date.now();
  const until = start + Number(hold[2]);
  let say = hold[3] === undefined ? undefined : Number(hold[3]);
  while (!existsSync(hold[1]!) && Date.now() < until) {
    if (say !== undefined && Date.now() - start >= say) {
      writeSync(1, JSON.stringify({ stuck: say }) + '\n');
      say = undefined;
    }
    block(Math.min(20, until - Date.now()));
  }
  console.log(JSON.stringify({ stalled: Date.now() - start }));
});

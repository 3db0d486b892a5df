// A cluster node in a child process whose main event loop the test can stall: `stall <ms>` on stdin busy-waits
// that long (as a saturated core or a long GC would), then prints `{"stalled":<ms>}`. Starts with a short node
// heartbeat so the tests stay quick: argv = redis URL, heartbeat TTL ms, tick ms, hang ms.
import { createInterface } from 'node:readline';
import { startBroker } from '../../src/broker.js';
import { defaults, type Config } from '../../src/config.js';
import { RedisEngine } from '../../src/engine/redis/engine.js';
import { createLogger } from '../../src/log.js';

const [url, ttl, tick, hang] = process.argv.slice(2) as [string, string, string, string];
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
  if (!m) return;
  const until = Date.now() + Number(m[1]);
  while (Date.now() < until) {
    /* the main loop is stuck */
  }
  console.log(JSON.stringify({ stalled: Number(m[1]) }));
});

// npm run check:long: the conformance checker against an in-process broker with a long budget.
// Runs: CHECK_RUNS (default 3000); seed: CHECK_SEED. CHECK_LAG_MS=15 puts a proxy in front of the broker that lags
// each connection by 0, 15 or 30 ms (frames of different clients then reach it out of order, as on a network).
// Exit 1 with the shrunk counterexample on a difference; the last line says how many scenarios passed in a row.
import { defaults, type Config } from '../src/config.js';
import { startBroker } from '../src/broker.js';
import { createLogger } from '../src/log.js';
import { formatReport, runCheck } from '../src/check/checker.js';
import { LagProxy } from '../test/helpers/lag-proxy.js';

const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', historySize: 3 };
const broker = await startBroker(config, { log: createLogger('silent', false), tcpPort: 0 });
const lagMs = Number(process.env.CHECK_LAG_MS ?? 0);
const proxy = lagMs > 0 ? await LagProxy.start(broker.port, lagMs) : undefined;
const options = {
  url: proxy?.url() ?? `ws://127.0.0.1:${broker.port}/ws`,
  tcp: true,
  runs: Number(process.env.CHECK_RUNS ?? 3000),
  seed: process.env.CHECK_SEED === undefined ? undefined : Number(process.env.CHECK_SEED),
  exclusive: true,
  historySize: config.historySize,
};
const started = Date.now();
const report = await runCheck(options);
console.log(formatReport(report, options));
const inARow = report.ok ? report.runs : report.runs - 1;
console.log(`${report.runs} scenario(s) in ${((Date.now() - started) / 1000).toFixed(1)} s${lagMs > 0 ? ` through a ${lagMs} ms lag proxy` : ''}: ${inARow} passed in a row`);
await proxy?.close();
await broker.close();
process.exit(report.ok ? 0 : 1);

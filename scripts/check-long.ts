// npm run check:long: the conformance checker against an in-process broker with a long budget.
// Runs: CHECK_RUNS (default 3000); seed: CHECK_SEED. Exit 1 with the shrunk counterexample on a difference.
import { defaults, type Config } from '../src/config.js';
import { startBroker } from '../src/broker.js';
import { createLogger } from '../src/log.js';
import { formatReport, runCheck } from '../src/check/checker.js';

const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', historySize: 3 };
const broker = await startBroker(config, { log: createLogger('silent', false), tcpPort: 0 });
const options = {
  url: `ws://127.0.0.1:${broker.port}/ws`,
  tcp: true,
  runs: Number(process.env.CHECK_RUNS ?? 3000),
  seed: process.env.CHECK_SEED === undefined ? undefined : Number(process.env.CHECK_SEED),
  exclusive: true,
  historySize: config.historySize,
};
const started = Date.now();
const report = await runCheck(options);
console.log(formatReport(report, options));
console.log(`${report.runs} scenario(s) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
await broker.close();
process.exit(report.ok ? 0 : 1);

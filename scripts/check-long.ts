// npm run check:long: the conformance checker against an in-process broker with a long budget.
// Runs: CHECK_RUNS (default 3000); seed: CHECK_SEED; transports: CHECK_TRANSPORTS (default ws,tcp,sse,mqtt; no sse when lagged).
// CHECK_LAG_MS=15 puts a proxy in front of the broker (and one in front of its MQTT port) that lags each connection
// by 0, 15 or 30 ms (frames of different clients then reach it out of order, as on a network).
// Exit 1 with the shrunk counterexample on a difference; the last line says how many scenarios passed in a row.
import { defaults, type Config } from '../src/config.js';
import { startBroker } from '../src/broker.js';
import { createLogger } from '../src/log.js';
import { formatReport, runCheck, TRANSPORTS } from '../src/check/checker.js';
import type { Transport } from '../src/protocol/model.js';
import { LagProxy } from '../test/helpers/lag-proxy.js';

const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', historySize: 3 };
const lagMs = Number(process.env.CHECK_LAG_MS ?? 0);
// Through the proxy the broker is reached at another host:port than its own: it refuses HTTP there (421, see
// --public-host), so event streams are left out of lagged runs.
const transports = (process.env.CHECK_TRANSPORTS ?? TRANSPORTS.filter((t) => lagMs === 0 || t !== 'sse').join(',')).split(',') as Transport[];
const broker = await startBroker(config, { log: createLogger('silent', false), tcpPort: 0, mqttPort: transports.includes('mqtt') ? 0 : undefined });
const proxy = lagMs > 0 ? await LagProxy.start(broker.port, lagMs) : undefined;
const mqttProxy = lagMs > 0 && broker.mqttPort > 0 ? await LagProxy.start(broker.mqttPort, lagMs) : undefined;
const options = {
  url: proxy?.url() ?? `ws://127.0.0.1:${broker.port}/ws`,
  transports,
  mqtt: broker.mqttPort === 0 ? undefined : [`mqtt://127.0.0.1:${mqttProxy?.port ?? broker.mqttPort}`],
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
await mqttProxy?.close();
await broker.close();
process.exit(report.ok ? 0 : 1);

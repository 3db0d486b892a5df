// `switchboard serve`: the broker in this process, or with --workers N the primary that forks N of them.
import { helpText, parseConfig, validateConfig } from '../config.js';
import { ListenError, startBroker } from '../broker.js';
import { createLogger, endLog } from '../log.js';
import { isWorker, onShutdownRequest, Primary, reportReady, workerFields } from './workers.js';

export async function serve(argv: string[]): Promise<number | void> {
  try {
    return await run(argv);
  } catch (err) {
    // A port that is taken: one line and exit 1, not a stack.
    if (!(err instanceof ListenError)) throw err;
    console.error(`switchboard: ${err.message}`);
    return 1;
  }
}

async function run(argv: string[]): Promise<number | void> {
  const config = parseConfig(argv, process.env);
  if (config.help) {
    console.log(helpText());
    return 0;
  }
  validateConfig(config);
  // --workers N: this process is the primary (forks N brokers sharing the ports) unless it is one of them.
  if (config.workers > 1 && !isWorker()) {
    const code = await new Primary(config, createLogger(config.logLevel, undefined, true).child({ role: 'primary' })).run();
    process.exit(code);
  }
  const log = createLogger(config.logLevel);
  const broker = await startBroker(config, { log: log.child(workerFields()) });
  let signals = 0;
  let closing = false;
  const drain = (why: Record<string, unknown>) => {
    if (closing) return;
    closing = true;
    broker.log.info(why, 'shutdown requested');
    broker.close().then(
      () => endLog(log).then(() => process.exit(0)),
      (err: unknown) => {
        broker.log.error({ err }, 'shutdown failed');
        return endLog(log).then(() => process.exit(1));
      },
    );
  };
  const shutdown = (signal: string) => {
    if (++signals > 1) {
      try {
        broker.log.warn({ signal }, 'second signal: exiting now');
      } catch {
        // The log was already ended (endLog, the last step before exit): exit all the same.
      }
      process.exit(1);
    }
    drain({ signal });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  if (isWorker()) {
    // The primary's request and a terminal's Ctrl-C (sent to the whole process group) may both arrive: one drain.
    onShutdownRequest(() => drain({ by: 'primary' }));
    reportReady(broker.port, broker.tcpPort);
  }
}

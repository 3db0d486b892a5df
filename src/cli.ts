#!/usr/bin/env node
// switchboard CLI: `serve` runs the broker; other commands are registered in COMMANDS.
import { ConfigError, helpText, parseConfig, validateConfig } from './config.js';
import { ListenError, startBroker, VERSION } from './broker.js';
import { pubCommand, subCommand } from './cli/pubsub.js';
import { chatCommand } from './cli/chat.js';
import { inspectCommand } from './inspect/bridge.js';
import { check } from './check/command.js';
import { createLogger, endLog } from './log.js';
import { isWorker, onShutdownRequest, Primary, reportReady, workerFields } from './cli/workers.js';

type Command = { help: string; run: (argv: string[]) => Promise<number | void> };

const COMMANDS: Record<string, Command> = {
  serve: { help: 'run the broker', run: serve },
  pub: { help: 'publish one message through the HTTP API: pub <topic> <json|text>', run: pubCommand },
  sub: { help: 'subscribe and print each message as a JSON line: sub <filter>...', run: subCommand },
  chat: { help: 'chat in a room from the terminal (or send lines from a pipe): chat [--name N] [--room R]', run: chatCommand },
  inspect: { help: 'run the Stately Inspector bridge for `serve --inspect` (port 8090)', run: inspectCommand },
  check: { help: 'check a running broker against the protocol model (random scenarios, shrunk counterexamples)', run: check },
};

async function serve(argv: string[]): Promise<number | void> {
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

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.help}`);
  return ['Usage: switchboard <command> [options]', '', 'Commands:', ...rows, '', 'Run `switchboard <command> --help` for its options, `switchboard --version` for the version.'].join('\n');
}

async function main(argv: string[]): Promise<number | void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  // `--version` answers the same before or after any command (`switchboard sub --version`).
  if (name === '--version' || name === '-V' || (Object.hasOwn(COMMANDS, name) && rest.includes('--version'))) {
    console.log(`switchboard ${VERSION}`);
    return 0;
  }
  // Own keys only: `switchboard constructor` is an unknown command, not Object's constructor.
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    console.error(`switchboard: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      console.error(`switchboard: ${err.message}`);
      process.exitCode = 2;
      return;
    }
    if (err instanceof ListenError) {
      console.error(`switchboard: ${err.message}`);
      process.exitCode = 1;
      return;
    }
    console.error('switchboard: fatal:', err);
    process.exitCode = 1;
  },
);

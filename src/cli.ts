#!/usr/bin/env node
// switchboard CLI: `serve` runs the broker; other commands are registered in COMMANDS. Each command's module is
// loaded when it runs: `switchboard sub` or `--help` does not load the broker (Redis client, metrics, the checker),
// which was most of a short command's start-up.
import { ConfigError, VERSION } from './config.js';

type Command = { help: string; run: (argv: string[]) => Promise<number | void> };

const COMMANDS: Record<string, Command> = {
  serve: { help: 'run the broker', run: async (argv) => (await import('./cli/serve.js')).serve(argv) },
  pub: { help: 'publish one message through the HTTP API: pub <topic> <json|text>', run: async (argv) => (await import('./cli/pubsub.js')).pubCommand(argv) },
  sub: { help: 'subscribe and print each message as a JSON line: sub <filter>...', run: async (argv) => (await import('./cli/pubsub.js')).subCommand(argv) },
  chat: { help: 'chat in a room from the terminal (or send lines from a pipe): chat [--name N] [--room R]', run: async (argv) => (await import('./cli/chat.js')).chatCommand(argv) },
  inspect: { help: 'run the Stately Inspector bridge for `serve --inspect` (port 8090)', run: async (argv) => (await import('./inspect/bridge.js')).inspectCommand(argv) },
  check: { help: 'check a running broker against the protocol model (random scenarios, shrunk counterexamples)', run: async (argv) => (await import('./check/command.js')).check(argv) },
};

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
    console.error('switchboard: fatal:', err);
    process.exitCode = 1;
    // Whatever a failed start left running (a client library's retry timer, say) must not hold the process up.
    setTimeout(() => process.exit(1), 1000).unref();
  },
);

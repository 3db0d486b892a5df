// `switchboard inspect`: runs @statelyai/inspect's bridge, which relays the events of `serve --inspect`
// to the Stately Inspector page in a browser. It listens on 8090 by default, not its library default 8080 (ours).
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { createInspectorServer } from '@statelyai/inspect/server';
import { ConfigError } from '../config.js';
import { DEFAULT_BRIDGE_PORT } from './stately.js';

const HELP = `Usage: switchboard inspect [--port <n>] [--open]

Starts the Stately Inspector bridge: a small HTTP + WebSocket server that receives the actor events of
\`switchboard serve --inspect\` and relays them to the Stately Inspector in your browser.

  --port <n>   port of the bridge (default ${DEFAULT_BRIDGE_PORT}; the broker itself uses 8080)
  --open       open the inspector page in the default browser
  --help       show this help

Then, in a second terminal:  switchboard serve --inspect ws://localhost:<port>   (--inspect alone means port ${DEFAULT_BRIDGE_PORT})
No internet? The broker's own live actors page needs none: http://localhost:8080/inspect`;

export async function inspectCommand(argv: string[]): Promise<number | void> {
  let values: { port?: string; open?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { port: { type: 'string' }, open: { type: 'boolean' }, help: { type: 'boolean' } }, strict: true }));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const port = values.port === undefined ? DEFAULT_BRIDGE_PORT : Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(`--port must be a port number (1-65535), got '${values.port}'`);
  // The library's server has no error handler: a taken port would crash it with a stack trace, so ask first.
  const problem = await portProblem(port);
  if (problem) throw new ConfigError(`cannot listen on port ${port}: ${problem}; pick another with --port and pass the same to serve --inspect ws://localhost:<port>`);

  const server = createInspectorServer({ port, autoOpen: values.open === true });
  console.log(
    [
      `Stately Inspector bridge on ws://localhost:${port}`,
      '',
      `  1. Open http://localhost:${port} in a browser on this machine (it embeds https://stately.ai/inspect, which needs internet).`,
      `  2. In another terminal run:  switchboard serve --inspect${port === DEFAULT_BRIDGE_PORT ? '' : ` ws://localhost:${port}`}`,
      '  3. Connect clients; every connection actor appears under the supervisor.',
      '',
      'The bridge replays its last 200 messages to a newly opened page; the broker re-announces every live actor',
      'whenever it (re)connects to the bridge. Ctrl-C stops the bridge.',
    ].join('\n'),
  );
  const stop = () => {
    server.stop();
    // The library's stop() leaves connected sockets open (ws does not close them), so end the process here.
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** Why `port` cannot be listened on (e.g. EADDRINUSE), or null when it is free. */
function portProblem(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE' ? 'it is in use' : err.message));
    probe.listen(port, () => probe.close(() => resolve(null)));
  });
}

// `switchboard check`: runs the conformance checker against a running broker.
// Exit codes: 0 every scenario conformed, 1 a difference was found (shrunk and printed), 2 bad usage.
import { parseArgs } from 'node:util';
import { formatReport, runCheck, TRANSPORTS } from './checker.js';
import type { Transport } from '../protocol/model.js';
import { ProbeError } from './probe.js';
import { LOCAL_WS_URL } from '../config.js';

const HELP = `Usage: switchboard check [--url ws://host:port[/ws]] [options]

Drives the broker with random multi-client scenarios (connect, sub/unsub with wildcards and presence,
pub with and without echo, send, rename, who, ping, quit, abrupt disconnects, malformed frames) and
compares every frame each client receives with a reference model of the protocol. On a difference it
shrinks the scenario and prints the smallest one it found, with the seed and path that replay it.

Options:
  --url <ws url>     the broker's WebSocket endpoint (/ws is added when the URL has no path); give it
                     again for each further node of one cluster: connections alternate between them
                     (default: SWITCHBOARD_WS_URL, else the local broker, ws://127.0.0.1:8080/ws)
  --runs <n>         scenarios to run (default 100)
  --seed <n>         fast-check seed, to replay a run
  --path <p>         the path printed with a counterexample (with --seed: replays exactly it)
  --exclusive        nobody else uses the broker: compare pub's \`delivered\` exactly (default: at least)
  --history <n>      the broker's --history setting, for sub with since (default 100)
  --timeout-ms <n>   how long one reply or close may take (default 3000)
  --transports <l>   the transports clients connect over, comma-separated (default ws): ws; tcp, the
                     TCP line protocol (JSON lines) through the broker's HTTP port (GET /lines upgrade)
                     into a room of their own, never its --room; sse, Server-Sent Events (GET /sse,
                     requests over POST); mqtt, MQTT 3.1.1 clients at QoS 0 and 1 (needs the broker's
                     --mqtt-port)
  --mqtt-url <url>   the broker's MQTT listener, mqtt://host:port; give it again for each --url, in
                     the same order (default: each --url's host, port 1883)
  --tcp, --sse       the same as adding tcp, sse to --transports
  --help             show this help

Exit status: 0 conforms, 1 difference found, 2 bad usage or no broker at --url.`;

export async function check(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string', multiple: true },
        runs: { type: 'string' },
        seed: { type: 'string' },
        path: { type: 'string' },
        exclusive: { type: 'boolean' },
        history: { type: 'string' },
        'timeout-ms': { type: 'string' },
        tcp: { type: 'boolean' },
        sse: { type: 'boolean' },
        transports: { type: 'string' },
        'mqtt-url': { type: 'string', multiple: true },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    return usage((err as Error).message);
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const given = values.url !== undefined && values.url.length > 0 ? values.url : [process.env.SWITCHBOARD_WS_URL ?? LOCAL_WS_URL];
  const urls: URL[] = [];
  for (const raw of given) {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      return usage(`--url must be a ws:// or wss:// URL, got '${raw}'`);
    }
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') return usage(`--url must be a ws:// or wss:// URL, got '${raw}'`);
    if (u.pathname === '/') u.pathname = '/ws';
    urls.push(u);
  }
  const url = urls[0]!;
  const runs = whole(values.runs, '--runs', 100, 1);
  const seed = values.seed === undefined ? undefined : whole(values.seed, '--seed', 0, -(2 ** 31));
  const historySize = whole(values.history, '--history', 100, 0);
  const timeoutMs = whole(values['timeout-ms'], '--timeout-ms', 3000, 10, 2 ** 31 - 1);
  for (const v of [runs, seed, historySize, timeoutMs]) if (v instanceof Error) return usage(v.message);
  if (values.path !== undefined && !/^\d+(:\d+)*(@[A-Za-z0-9+/:]*)?$/.test(values.path)) {
    return usage(`--path must be the path printed with a counterexample (like 12:3:0@AB:C), got '${values.path}'`);
  }
  if (values.path !== undefined && seed === undefined) return usage('--path needs the --seed it was printed with');
  const transports = (values.transports ?? 'ws').split(',').map((t) => t.trim());
  const unknown = transports.filter((t) => !(TRANSPORTS as readonly string[]).includes(t));
  if (unknown.length > 0 || transports.length === 0) return usage(`--transports takes a comma-separated list of ${TRANSPORTS.join(', ')}, got '${values.transports}'`);
  const mqttGiven = values['mqtt-url'] ?? [];
  if (mqttGiven.length > 0 && mqttGiven.length !== urls.length) return usage(`--mqtt-url must be given once per --url (${urls.length}), got ${mqttGiven.length}`);
  const mqtt: string[] = [];
  for (const raw of mqttGiven.length > 0 ? mqttGiven : urls.map((u) => `mqtt://${u.host.replace(/:\d+$/, '')}:1883`)) {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      return usage(`--mqtt-url must be an mqtt://host:port URL, got '${raw}'`);
    }
    if (u.protocol !== 'mqtt:' || u.port === '') return usage(`--mqtt-url must be an mqtt://host:port URL, got '${raw}'`);
    mqtt.push(`mqtt://${u.host}`);
  }

  try {
    const options = {
      url: url.toString(),
      more: urls.slice(1).map((u) => u.toString()),
      runs: runs as number,
      seed: seed as number | undefined,
      path: values.path,
      exclusive: values.exclusive === true,
      historySize: historySize as number,
      timeoutMs: timeoutMs as number,
      tcp: values.tcp === true,
      sse: values.sse === true,
      transports: transports as Transport[],
      mqtt,
    };
    const report = await runCheck(options);
    console.log(formatReport(report, options));
    return report.ok ? 0 : 1;
  } catch (err) {
    if (err instanceof ProbeError) {
      console.error(`switchboard check: ${err.message}`);
      return 2;
    }
    throw err;
  }
}

function usage(message: string): number {
  console.error(`switchboard check: ${message}\n\n${HELP}`);
  return 2;
}

/** A whole number flag; `max`: what it is used as must hold it (a timer takes at most 2^31 − 1 ms). */
function whole(raw: string | undefined, flag: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number | Error {
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw.trim())) return new Error(`${flag} must be a whole number, got '${raw}'`);
  const n = Number(raw);
  if (n < min || !Number.isSafeInteger(n)) return new Error(`${flag} must be at least ${min}, got ${raw}`);
  return n > max ? new Error(`${flag} must be at most ${max}, got ${raw}`) : n;
}

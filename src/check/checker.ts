// runCheck: fast-check drives random multi-client scenarios against a running broker and the
// reference model together; on a difference it shrinks the scenario and reports the smallest one
// found, with the seed and path that replay exactly it.
import fc from 'fast-check';
import { ProtocolModel, type Transport } from '../protocol/model.js';
import { scenarioCommands } from './commands.js';
import { Fleet } from './fleet.js';
import { Probe, ProbeError } from './probe.js';
import { connectLines } from './lines-probe.js';
import { connectMqtt } from './mqtt-probe.js';

/** Every transport the checker can connect clients over, in the order `--transports` prints them. */
export const TRANSPORTS: readonly Transport[] = ['ws', 'tcp', 'sse', 'mqtt'];

export interface CheckOptions {
  /** WebSocket endpoint of the broker, e.g. ws://127.0.0.1:8080/ws. */
  url: string;
  runs: number;
  seed?: number | undefined;
  /** Replay path printed with a counterexample (with its seed): fast-check's path, `@`, the commands' replayPath. */
  path?: string | undefined;
  /** Nobody else is connected to the broker: `delivered` counts are compared exactly. */
  exclusive?: boolean;
  /** The broker's per-topic history size (its --history), for `sub` with `since`. */
  historySize?: number;
  maxCommands?: number;
  timeoutMs?: number;
  /**
   * Scenarios connect some clients over the TCP line protocol too (JSON lines). They reach it through the broker's
   * HTTP port (`/lines` upgrade, beside `url`) and join a room of their scenario's own, never the broker's --room.
   */
  tcp?: boolean | undefined;
  /** Also connect some clients over Server-Sent Events (`/sse`). */
  sse?: boolean | undefined;
  /**
   * The transports scenarios connect clients over (default: WebSocket, with TCP and SSE when `tcp` / `sse` say so).
   * `mqtt` needs `mqtt`, the nodes' MQTT listeners.
   */
  transports?: readonly Transport[] | undefined;
  /** MQTT listeners (mqtt://host:port), one per node in the order of `url` then `more`. */
  mqtt?: string[] | undefined;
  /** Endpoints of further nodes of the same cluster: the scenario's connections alternate between all of them. */
  more?: string[] | undefined;
}

/** The transports a run connects over: `transports`, plus `tcp` and `sse` (their older flags), in TRANSPORTS order. */
export function transportsOf(options: CheckOptions): Transport[] {
  const asked = new Set<Transport>(options.transports ?? ['ws']);
  if (options.tcp) asked.add('tcp');
  if (options.sse) asked.add('sse');
  return TRANSPORTS.filter((t) => asked.has(t));
}

export interface CheckReport {
  ok: boolean;
  runs: number;
  seed: number;
  /** Set on failure: replays the shrunk counterexample with `seed`. */
  path?: string;
  shrinks?: number;
  /** The shrunk scenario, one command per line, with the exact frames sent. */
  transcript?: string[];
  failure?: string;
  /** Commands performed on the broker, by kind (`pub`, or `pub mqtt` by a client not on WebSocket), over every scenario (shrinking included). */
  performed: Record<string, number>;
  /** Messages received as the model said, by the publisher's and the subscriber's transport (`mqtt→sse`). */
  messages: Record<string, number>;
}

export async function runCheck(options: CheckOptions): Promise<CheckReport> {
  const timeoutMs = options.timeoutMs ?? 3000;
  // Fail fast and clearly when there is no broker, instead of a shrunk "counterexample" of one connect.
  let observer = await Probe.connect(options.url, timeoutMs);
  // Reopened when the broker closed it (idle timeout during a long check).
  const observe = async () => (observer.open ? observer : (observer = await Probe.connect(options.url, timeoutMs)));
  const transports = new Set(transportsOf(options));
  const urls = [options.url, ...(options.more ?? [])];
  if (transports.has('mqtt') && (options.mqtt?.length ?? 0) !== urls.length) {
    observer.close();
    throw new ProbeError(`MQTT clients need the MQTT listener of each of the ${urls.length} node(s) (got ${options.mqtt?.length ?? 0})`);
  }
  const nodes = urls.map((ws, i) => ({ ws, mqtt: transports.has('mqtt') ? options.mqtt![i] : undefined }));
  try {
    // One connection over each further transport first: a broker without it fails fast, saying so.
    if (transports.has('tcp')) (await connectLines(options.url, `chk${process.pid}.reachable`, timeoutMs)).close();
    for (const node of nodes) if (node.mqtt !== undefined) (await connectMqtt(node.mqtt, '', timeoutMs)).close();
  } catch (err) {
    observer.close(); // an open observer would keep `switchboard check` from exiting with its message
    throw err;
  }

  const [fcPath, replayPath] = options.path === undefined ? [] : options.path.split('@');
  const performed: Record<string, number> = {};
  const messages: Record<string, number> = {};
  let lastFailure: { transcript: string[]; message: string } | undefined;
  const property = fc.asyncProperty(fc.commands(scenarioCommands(transports), { maxCommands: options.maxCommands ?? 40, size: 'max', ...(replayPath && { replayPath }) }), async (steps) => {
    const fleet = new Fleet({ exclusive: options.exclusive ?? false, timeoutMs, observer: observe, transports, nodes });
    const model = new ProtocolModel({ historySize: options.historySize ?? 100, room: fleet.room });
    try {
      await fc.asyncModelRun(() => ({ model, real: fleet }), steps);
    } catch (err) {
      // The last failing run is the one fast-check reports once shrinking ends.
      lastFailure = { transcript: [...fleet.transcript], message: err instanceof Error ? err.message : String(err) };
      throw err;
    } finally {
      for (const kind of fleet.performed) performed[kind] = (performed[kind] ?? 0) + 1;
      for (const [key, n] of fleet.messages) messages[key] = (messages[key] ?? 0) + n;
      fleet.close();
    }
  });
  const details = await fc
    .check(property, {
      numRuns: options.runs,
      ...(options.seed !== undefined && { seed: options.seed }),
      ...(fcPath !== undefined && { path: fcPath }),
    })
    .finally(() => observer.close());
  if (!details.failed) return { ok: true, runs: details.numRuns, seed: details.seed, performed, messages };
  // fc.commands needs its own replayPath (which commands ran) besides the seed and path to rebuild the same scenario.
  const commandsReplay = /replayPath="([^"]*)"/.exec(String(details.counterexample?.[0] ?? ''))?.[1];
  return {
    ok: false,
    runs: details.numRuns,
    seed: details.seed,
    ...(details.counterexamplePath !== null && { path: details.counterexamplePath + (commandsReplay ? `@${commandsReplay}` : '') }),
    shrinks: details.numShrinks,
    transcript: lastFailure?.transcript ?? [],
    failure: lastFailure?.message ?? String(details.errorInstance),
    performed,
    messages,
  };
}

/** The report as the CLI prints it. */
export function formatReport(report: CheckReport, options: CheckOptions): string {
  const total = Object.values(report.performed).reduce((a, b) => a + b, 0);
  const mix = Object.entries(report.performed)
    .sort(([, a], [, b]) => b - a)
    .map(([op, n]) => `${op} ${n}`)
    .join(', ');
  const received = Object.values(report.messages).reduce((a, b) => a + b, 0);
  const byTransport = Object.entries(report.messages)
    .sort(([x, a], [y, b]) => b - a || x.localeCompare(y))
    .map(([key, n]) => `${key} ${n}`)
    .join(', ');
  if (report.ok) return `switchboard check: ${report.runs} scenarios conform to the model (seed ${report.seed})\n${total} commands: ${mix}\n${received} messages received as the model said: ${byTransport}`;
  return [
    `switchboard check: the broker differs from the model (after ${report.runs} scenario(s), shrunk ${report.shrinks ?? 0} time(s))`,
    '',
    'Smallest scenario found:',
    ...(report.transcript ?? []).map((l) => `  ${l}`),
    '',
    'Difference:',
    ...(report.failure ?? '').split('\n').map((l) => `  ${l}`),
    '',
    `Replay: switchboard check ${replayFlags(report, options)}`,
  ].join('\n');
}

/** The flags that replay exactly the reported counterexample. */
function replayFlags(report: CheckReport, options: CheckOptions): string {
  // `--seed=N`: a negative seed after a space would read as an option (parseArgs refuses it as ambiguous).
  const flags = [`--url ${options.url}`, ...(options.more ?? []).map((u) => `--url ${u}`), `--seed=${report.seed}`];
  if (report.path) flags.push(`--path ${report.path}`);
  if (options.exclusive) flags.push('--exclusive');
  if (options.historySize !== undefined && options.historySize !== 100) flags.push(`--history ${options.historySize}`);
  const transports = transportsOf(options);
  if (transports.join(',') !== 'ws') flags.push(`--transports ${transports.join(',')}`);
  for (const u of transports.includes('mqtt') ? (options.mqtt ?? []) : []) flags.push(`--mqtt-url ${u}`);
  return flags.join(' ');
}

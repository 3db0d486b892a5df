// `switchboard pub` and `switchboard sub`: the push scenario from a shell. pub posts to the HTTP API;
// sub holds a WebSocket and prints every msg as one JSON line (pipe it into jq, a log, a dashboard).
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { ConfigError } from '../config.js';
import { filterError, topicError } from '../topics/topic.js';

const PUB_HELP = `Usage: switchboard pub [--url http://127.0.0.1:8080] [--api-key KEY] <topic> <data>

Publishes <data> to <topic> through POST /api/publish and prints {"seq","epoch","delivered"}.
<data> is parsed as JSON when it is valid JSON (42, true, {"a":1}, "quoted"), else sent as a string.
  --url       the broker's HTTP address (env SWITCHBOARD_URL)
  --api-key   bearer key when the broker runs with --api-key (env SWITCHBOARD_API_KEY)`;

const SUB_HELP = `Usage: switchboard sub [--url ws://127.0.0.1:8080/ws] [--since N] [--count N] <filter>...

Subscribes to each filter (MQTT wildcards + and #) and prints every msg frame as one JSON line.
  --url     the broker's WebSocket endpoint (env SWITCHBOARD_WS_URL)
  --since   replay history after this seq first (per topic)
  --count   exit after this many messages (default: run until interrupted)`;

function parse(argv: string[], flags: string[]): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const f of flags) options[f] = { type: 'string' };
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

function count(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`--${flag} must be a whole number, got '${raw}'`);
  return Number(raw);
}

export async function pubCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, ['url', 'api-key']);
  if (values.help) {
    console.log(PUB_HELP);
    return 0;
  }
  if (positionals.length !== 2) throw new ConfigError(`pub needs <topic> and <data>\n\n${PUB_HELP}`);
  const [topic, raw] = positionals as [string, string];
  const bad = topicError(topic);
  if (bad) throw new ConfigError(`bad topic '${topic}': ${bad}`);
  let data: unknown = raw;
  try {
    data = JSON.parse(raw);
  } catch {
    // Not JSON: publish the text as it is.
  }
  const base = (values.url as string | undefined) ?? process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:8080';
  const key = (values['api-key'] as string | undefined) ?? process.env.SWITCHBOARD_API_KEY;
  let res: Response;
  try {
    res = await fetch(new URL('/api/publish', base), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key && { authorization: `Bearer ${key}` }) },
      body: JSON.stringify({ topic, data }),
    });
  } catch (err) {
    console.error(`switchboard pub: cannot reach ${base}: ${(err as Error).cause ?? (err as Error).message}`);
    return 1;
  }
  const text = await res.text();
  if (!res.ok) {
    console.error(`switchboard pub: HTTP ${res.status}: ${text}`);
    return 1;
  }
  console.log(text);
  return 0;
}

export async function subCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, ['url', 'since', 'count']);
  if (values.help) {
    console.log(SUB_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new ConfigError(`sub needs at least one <filter>\n\n${SUB_HELP}`);
  for (const f of positionals) {
    const bad = filterError(f);
    if (bad) throw new ConfigError(`bad filter '${f}': ${bad}`);
  }
  const since = count(values.since as string | undefined, 'since');
  const limit = count(values.count as string | undefined, 'count');
  const url = (values.url as string | undefined) ?? process.env.SWITCHBOARD_WS_URL ?? 'ws://127.0.0.1:8080/ws';

  return new Promise<number>((resolve) => {
    const ws = new WebSocket(url);
    let received = 0;
    let exitCode = 0;
    const stop = (code: number) => {
      exitCode = code;
      ws.close(1000);
    };
    process.once('SIGINT', () => stop(0));
    ws.on('error', (err) => {
      console.error(`switchboard sub: ${url}: ${err.message}`);
      exitCode = 1;
    });
    ws.on('close', (code, reason) => {
      if (code !== 1000 && code !== 1005 && exitCode === 0) {
        console.error(`switchboard sub: connection closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`);
        exitCode = 1;
      }
      resolve(exitCode);
    });
    ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString()) as { op: string; id?: unknown; code?: string; message?: string };
      if (frame.op === 'hello') {
        positionals.forEach((topic, i) => ws.send(JSON.stringify({ op: 'sub', topic, id: `sub${i}`, ...(since !== undefined && { since }) })));
      } else if (frame.op === 'error') {
        console.error(`switchboard sub: ${frame.code}: ${frame.message}`);
        stop(1);
      } else if (frame.op === 'msg') {
        process.stdout.write(raw.toString() + '\n');
        if (limit !== undefined && ++received >= limit) stop(0);
      }
    });
  });
}

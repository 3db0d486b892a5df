// `switchboard pub` and `switchboard sub`: the push scenario from a shell. pub posts to the HTTP API;
// sub holds a client-library connection (reconnecting, resuming) and prints every msg as one JSON line.
import { parseArgs } from 'node:util';
import { ConfigError, LOCAL_WS_URL } from '../config.js';
import { filterError, topicError } from '../protocol/topic.js';
import { isWildcard, SwitchboardClient, SwitchboardError, type ClientOptions, type Message } from '@switchboard/client';
import { closeText, StatusLine } from './status-line.js';


const PUB_HELP = `Usage: switchboard pub [--url http://127.0.0.1:8080] [--api-key KEY] <topic> <data>

Publishes <data> to <topic> through POST /api/publish and prints {"seq","epoch","delivered"}.
<data> is parsed as JSON when it is valid JSON (42, true, {"a":1}, "quoted"), else sent as a string.
  --url       the broker's HTTP address (env SWITCHBOARD_URL)
  --api-key   bearer key when the broker runs with --api-key (env SWITCHBOARD_API_KEY)`;

const SUB_HELP = `Usage: switchboard sub [--url ws://127.0.0.1:8080/ws] [--token T] [--since N [--epoch E]] [--count N] <filter>...

Subscribes to each filter (MQTT wildcards + and #) and prints every msg frame as one JSON line. Reconnects on its
own and resumes where it was; when the broker cannot replay what was missed (also for --since) it says so on stderr.
A broker that cannot be reached: exit 1, or, in a terminal, a status line that retries until it can.
  --url     the broker's WebSocket endpoint (env SWITCHBOARD_WS_URL; default ws://127.0.0.1:8080/ws)
  --token   auth token (env SWITCHBOARD_TOKEN)
  --since   replay history after this seq first (0: everything the broker holds)
  --epoch   the epoch of that seq (protocol 2: without it a position above 0 cannot be checked)
  --count   exit after exactly this many messages (default: run until interrupted)`;

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
  const n = Number(raw);
  // Past 2^53 a number is no exact count or seq (the client library refuses it): said here, not as a stack trace.
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw new ConfigError(`--${flag} must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, got '${raw}'`);
  return n;
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
  let endpoint: URL | undefined;
  try {
    endpoint = new URL('/api/publish', base);
  } catch {
    // not a URL: said below
  }
  if (endpoint === undefined || (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:')) {
    // Bad input, as `sub` and `chat` answer a bad --url (docs/usage.md): not "cannot reach".
    console.error(`switchboard pub: --url must be the broker's http(s):// URL, got '${base}'`);
    return 2;
  }
  let res: Response;
  try {
    res = await fetch(endpoint, {
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
  const { values, positionals } = parse(argv, ['url', 'since', 'epoch', 'count', 'token']);
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
  const epoch = values.epoch as string | undefined;
  const limit = count(values.count as string | undefined, 'count');
  if (since !== undefined && since > 0 && positionals.some(isWildcard)) {
    throw new ConfigError('--since above 0 needs concrete topics (one seq cannot be a position on several topics)');
  }
  if (epoch !== undefined && !(since !== undefined && since > 0)) throw new ConfigError('--epoch goes with --since above 0 (the position it is the epoch of)');
  const url = (values.url as string | undefined) ?? process.env.SWITCHBOARD_WS_URL ?? LOCAL_WS_URL;
  const token = (values.token as string | undefined) ?? process.env.SWITCHBOARD_TOKEN;
  if (limit === 0) return 0;

  const client = cliClient({ url, ...(token && { token }) });
  const say = (line: string) => {
    status.clear();
    console.error(`switchboard sub: ${line}`);
  };
  // A person at a terminal gets a status line that counts down to the next attempt; a script gets exit 1 at once.
  const interactive = process.stdin.isTTY === true && process.stderr.isTTY === true;
  const status = new StatusLine(process.stderr, 'switchboard sub: ');
  let received = 0;
  let lost = false;
  let everConnected = false;
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    status.clear();
    client.close();
    finish(code);
  };

  client.on('connected', () => {
    status.clear();
    if (lost) say('reconnected');
    everConnected = true;
    lost = false;
  });
  client.on('state', (s) => s === 'connecting' && status.connecting());
  client.on('reconnecting', ({ lastClose, inMs }) => {
    if (interactive) return status.offline(lastClose, inMs);
    // Before the first hello there is nothing to resume: a wrong URL or a dead broker is an error.
    if (!everConnected) {
      say(`${url}: cannot connect (${lastClose ? closeText(lastClose) : 'no answer'})`);
      return stop(1);
    }
    if (!lost) say(`connection lost (${lastClose ? closeText(lastClose) : 'no answer'}); reconnecting…`); // once per outage
    lost = true;
  });
  client.on('closed', (c) => {
    if (stopping) return;
    if (c.code !== 1000) say(`${everConnected ? 'connection closed' : `${url}: cannot connect`} (${closeText(c)})`);
    stop(c.code !== 1000 ? 1 : 0);
  });
  client.on('error', (err) => say(`${err.code}: ${err.message}`));
  process.once('SIGINT', () => stop(0));

  // The client's own message event: once per message, however many of the filters overlap.
  client.on('message', (m: Message) => {
    if (received === limit) return;
    const frame = { op: 'msg', topic: m.topic, seq: m.seq, ...(m.epoch !== undefined && { epoch: m.epoch }), ...(m.from && { from: m.from }), ts: m.ts, data: m.data };
    process.stdout.write(JSON.stringify(frame) + '\n');
    if (++received === limit) stop(0);
  });
  const subs = positionals.map((filter) => {
    const positions = since !== undefined && since > 0 ? { [filter]: { seq: since, ...(epoch !== undefined && { epoch }) } } : undefined;
    const sub = client.subscription(filter, { ...(since === 0 && { history: true }), ...(positions && { positions }) });
    // Attached before subscribing: the verdict of the first subscribe (--since) is told too, not only resumes.
    let subscribed = false;
    sub.on('notRecovered', (v) => {
      const topics = Object.entries(v.missed).map(([t, why]) => `${t} (${why})`);
      say(`${filter}: not recovered${subscribed ? ' after reconnecting' : ''} (recovered:false, ${v.reason}): messages may be missing on ${topics.join(', ') || 'its topics'}`);
    });
    sub.subscribe().then(
      () => (subscribed = true),
      (err: SwitchboardError) => {
        if (err.code === 'closed') return;
        say(`${filter}: ${err.code}: ${err.message}`);
        stop(1);
      },
    );
    return sub;
  });
  // A subscription refused later (a resubscribe after a reconnect) was said as an error: with none left, stop.
  for (const sub of subs) sub.on('state', (s) => s === 'failed' && subs.every((x) => x.state === 'failed') && stop(1));
  client.connect().catch(() => {}); // failures arrive as the events above
  return done;
}

/** The client for a CLI command: a bad --url is a usage error (exit 2), not a crash. */
export function cliClient(options: ClientOptions): SwitchboardClient {
  try {
    return new SwitchboardClient({ ...options, connect: false });
  } catch (err) {
    if (err instanceof SwitchboardError && err.code === 'bad_option') throw new ConfigError(err.message.replace(/^url /, '--url '));
    throw err;
  }
}

// Config: command-line flags and SWITCHBOARD_* environment variables → one validated Config.
// One table describes every setting: its flag, env var, type, bounds, default and help line.
import { parseArgs } from 'node:util';
import { ConfigError } from './config-error.js';
import { topicError } from './protocol/topic.js';
import { checkTlsFiles, redisTarget } from './redis-url.js';

/** The broker's version: `switchboard --version` and hello's `server.version`. */
export const VERSION = '0.1.0';

export { ConfigError };
// The --redis URL's forms (redis-url.ts), as they were read from here before.
export { redactRedisUrl, redisTarget, type RedisTarget, type SentinelTarget, type TlsFiles, type UnixSocketTarget } from './redis-url.js';

type Kind =
  | { type: 'int'; min: number; max: number }
  | { type: 'string'; bare?: string }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'bool' };

interface Setting {
  flag: string;
  kind: Kind;
  default: string | number | boolean | undefined;
  help: string;
}

const ms = (min: number, max = 86_400_000): Kind => ({ type: 'int', min, max });

/** Every setting of `switchboard serve`. The env var is SWITCHBOARD_ + the flag in upper snake case. */
export const SETTINGS = {
  host: { flag: 'host', kind: { type: 'string' }, default: '127.0.0.1', help: 'interface to listen on (0.0.0.0 for all)' },
  port: { flag: 'port', kind: { type: 'int', min: 0, max: 65535 }, default: 8080, help: 'HTTP + WebSocket port (0 picks a free one)' },
  tcpPort: { flag: 'tcp-port', kind: { type: 'int', min: 0, max: 65535 }, default: 8000, help: 'TCP line-protocol port; 0 disables TCP' },
  mqttPort: { flag: 'mqtt-port', kind: { type: 'int', min: 0, max: 65535 }, default: 0, help: 'MQTT 3.1.1 and 5.0 port (docs/mqtt.md; 1883 is the usual one); 0 disables MQTT' },
  mqttSessions: { flag: 'mqtt-sessions', kind: { type: 'int', min: 0, max: 10_000_000 }, default: 10_000, help: 'persistent MQTT sessions kept while their clients are away (3.1.1 clean session 0, 5.0 session expiry); over it the least recently kept goes' },
  mqttRetainedBytes: { flag: 'mqtt-retained-bytes', kind: { type: 'int', min: 0, max: 2 ** 31 }, default: 16 * 1024 * 1024, help: 'bytes of retained MQTT messages kept (at most 100,000 messages); over it the oldest goes; 0 turns retained messages off' },
  mqttReceiveMaximum: { flag: 'mqtt-receive-maximum', kind: { type: 'int', min: 1, max: 65535 }, default: 65535, help: "unanswered QoS 1 and 2 PUBLISHes one MQTT 5.0 client may have at once (its CONNACK's Receive Maximum); one more is DISCONNECT 0x93. 65535 (MQTT's default) lets a client that ignores it (the mqtt npm client) burst" },
  mqttMaxKeepalive: { flag: 'mqtt-max-keepalive', kind: { type: 'int', min: 0, max: 65535 }, default: 0, help: "longest MQTT keepalive (seconds) a client may ask for: a 5.0 client asking more, or 0 (none), is told this one (its CONNACK's Server Keep Alive) and held to it; a 3.1.1 client asking more, or 0, is refused (0x02: 3.1.1 cannot be told). 0: no limit" },
  mqttAnonymousAcl: { flag: 'mqtt-anonymous-acl', kind: { type: 'string' }, default: undefined, help: 'JSON acl like a token\'s ({"pub":[…],"sub":[…],"subDeny":[…]}) for MQTT clients that connect without a password: with tokens required they are admitted under it instead of refused; without tokens it limits them' },
  heartbeatMs: { flag: 'heartbeat-ms', kind: ms(10), default: 25_000, help: 'WebSocket ping interval; no pong by the next ping closes with 4002' },
  idleMs: { flag: 'idle-ms', kind: ms(10), default: 60_000, help: 'no inbound frames for this long → idle' },
  idleGraceMs: { flag: 'idle-grace-ms', kind: ms(0), default: 10_000, help: 'idle for this long → closed with 4000 (when --idle-close applies)' },
  idleClose: { flag: 'idle-close', kind: { type: 'enum', values: ['tcp', 'all', 'none'] }, default: 'tcp', help: 'which idle connections are closed (4000): TCP line clients only, all, or none; WebSocket clients that answer pings stay by default' },
  closeTimeoutMs: { flag: 'close-timeout-ms', kind: ms(10), default: 5_000, help: 'how long a close handshake may take before the socket is cut' },
  // 65,536 messages, as NATS's pending limit per subscription: a wildcard subscriber that receives 20,000 msg/s gets
  // seconds of slack for a scheduling hiccup, not half a second; --mailbox-bytes (8 MiB) is what bounds memory.
  mailboxSize: { flag: 'mailbox-size', kind: { type: 'int', min: 1, max: 1_000_000 }, default: 65_536, help: 'outbound queue bound per connection (messages; --mailbox-bytes bounds it in bytes too)' },
  mailboxBytes: { flag: 'mailbox-bytes', kind: { type: 'int', min: 1024, max: 2 ** 31 }, default: 8 * 1024 * 1024, help: 'outbound queue bound per connection (bytes of queued frames; over it or over --mailbox-size: slow consumer)' },
  slowConsumer: { flag: 'slow-consumer', kind: { type: 'enum', values: ['close', 'drop-oldest'] }, default: 'close', help: 'full mailbox: close with 4001, or drop the oldest queued message' },
  maxPayload: { flag: 'max-payload', kind: { type: 'int', min: 64, max: 64 * 1024 * 1024 }, default: 65_536, help: 'largest inbound frame in bytes (over it: close 1009)' },
  maxSubscriptions: { flag: 'max-subscriptions', kind: { type: 'int', min: 1, max: 100_000 }, default: 100, help: 'filters one connection may hold' },
  historySize: { flag: 'history', kind: { type: 'int', min: 0, max: 100_000 }, default: 100, help: 'messages kept per topic for sub with since' },
  historyBytes: { flag: 'history-bytes', kind: { type: 'int', min: 0, max: 64 * 1024 * 1024 * 1024 }, default: 128 * 1024 * 1024, help: 'bytes of history kept in total; over it the oldest messages of any topic are evicted' },
  historyTopicBytes: { flag: 'history-topic-bytes', kind: { type: 'int', min: 0, max: 1024 * 1024 * 1024 }, default: 4 * 1024 * 1024, help: 'bytes of history kept per topic; over it that topic\'s oldest messages are evicted' },
  replayBytes: { flag: 'replay-bytes', kind: { type: 'int', min: 0, max: 1024 * 1024 * 1024 }, default: 2 * 1024 * 1024, help: 'bytes one resuming sub may replay; a topic over it answers recovered:false (replay_limit)' },
  maxTopics: { flag: 'max-topics', kind: { type: 'int', min: 1, max: 10_000_000 }, default: 100_000, help: 'topics remembered (seq and history); least recently published forgotten first' },
  topicNamesBytes: { flag: 'topic-names-bytes', kind: { type: 'int', min: 65_536, max: 64 * 1024 * 1024 * 1024 }, default: 64 * 1024 * 1024, help: 'bytes the names of remembered topics may take (live and forgotten ones, as indexed: ~280 bytes a segment); over it forgotten names go first, then the least recently published topics' },
  room: { flag: 'room', kind: { type: 'string' }, default: 'chat', help: 'chat room topic TCP clients join on connect' },
  roomAddresses: { flag: 'room-addresses', kind: { type: 'enum', values: ['show', 'hide'] }, default: 'show', help: "chat room lines and plain-text who show each client's address (`show`, the classic room) or its id (`hide`)" },
  roomAnnounceMax: { flag: 'room-announce-max', kind: { type: 'int', min: 0, max: 1_000_000 }, default: 200, help: 'above this many people in the chat room, logins and logouts are not announced (said in the greeting)' },
  renameRate: { flag: 'rename-rate', kind: { type: 'int', min: 0, max: 1_000_000 }, default: 5, help: 'renames per second per connection (0 = unlimited); over it: rate_limited' },
  lineLimit: { flag: 'line-limit', kind: { type: 'int', min: 64, max: 64 * 1024 * 1024 }, default: 65_536, help: 'longest TCP line in bytes (over it: error line and close)' },
  apiKey: { flag: 'api-key', kind: { type: 'string' }, default: undefined, help: 'when set, /api/* answers 401 without `Authorization: Bearer <key>`; prefer the env var' },
  maxConnections: { flag: 'max-connections', kind: { type: 'int', min: 1, max: 1_000_000 }, default: 10_000, help: 'open sockets in total (HTTP requests, WebSocket, TCP), from accept to close; over it: HTTP 503 and the socket is closed, TCP bye (1013)' },
  maxConnectionsPerIp: { flag: 'max-connections-per-ip', kind: { type: 'int', min: 1, max: 1_000_000 }, default: 1000, help: 'open sockets from one IP address (HTTP requests, WebSocket, TCP); over it: HTTP 429 and the socket is closed, TCP bye (1013)' },
  httpTimeoutMs: { flag: 'http-timeout-ms', kind: ms(50, 600_000), default: 10_000, help: 'time an HTTP client has to send its request headers, and its whole request; over it: HTTP 408 and the socket is closed' },
  rate: { flag: 'rate', kind: { type: 'int', min: 0, max: 1_000_000 }, default: 1000, help: 'inbound frames per second per connection (token bucket; 0 = unlimited); over it: rate_limited errors' },
  rateBurst: { flag: 'rate-burst', kind: { type: 'int', min: 1, max: 1_000_000 }, default: 2000, help: 'inbound frames one connection may send at once after a quiet period' },
  rateStrikes: { flag: 'rate-strikes', kind: { type: 'int', min: 1, max: 1_000_000 }, default: 100, help: 'rate_limited frames within 10 s after which the connection is closed with 1008' },
  allowedOrigins: { flag: 'allowed-origins', kind: { type: 'string' }, default: undefined, help: "comma-separated origins browsers may connect from, or '*' (default: the broker's own address, localhost, 127.0.0.1, [::1] at its port, and --public-host); others get HTTP 403" },
  publicHost: { flag: 'public-host', kind: { type: 'string' }, default: undefined, help: 'comma-separated host[:port] names browsers reach the broker by (a proxy, a DNS name); pages from them may connect; without a port, any port' },
  authSecret: { flag: 'auth-secret', kind: { type: 'string' }, default: undefined, help: 'HS256 secret: clients must present a JWT (?token= or Authorization: Bearer); prefer the env var' },
  tokenGraceMs: { flag: 'token-grace-ms', kind: ms(0), default: 30_000, help: 'when a connected client\'s token expires it is told (token_expired) and has this long to send a fresh one ({"op":"auth","token":…}); then it is closed with 4003' },
  authJwks: { flag: 'auth-jwks', kind: { type: 'string' }, default: undefined, help: 'path of a JWKS JSON file whose keys verify client JWTs (instead of --auth-secret)' },
  redisUrl: { flag: 'redis', kind: { type: 'string' }, default: undefined, help: 'the Redis that makes every broker process using it one broker (docs/cluster.md): redis://host:port (or rediss://), unix:///path/to/redis.sock (a Redis on this machine, by its Unix socket), redis+sentinel://host:port,host:port/mymaster (the master that Sentinel names, followed across failovers), or a Redis Cluster (Redis 7.0 or later: messages use sharded PUB/SUB) as redis+cluster://host:port,host:port,… (seed nodes); over TLS rediss://, rediss+sentinel://, rediss+cluster://, whose query may name PEM files (tlsCa, tlsCert, tlsKey); without it the broker keeps everything in memory' },
  workers: { flag: 'workers', kind: { type: 'int', min: 1, max: 256 }, default: 1, help: 'broker processes on this machine sharing --port and --tcp-port (node:cluster); above 1 needs --redis; the primary restarts a worker that dies (docs/cluster.md)' },
  redisMaxInflight: { flag: 'redis-max-inflight', kind: { type: 'int', min: 1, max: 10_000_000 }, default: 10_000, help: 'requests one node may have waiting on Redis at once; over it: unavailable (bounds memory while Redis is slow)' },
  redisTimeoutMs: { flag: 'redis-timeout-ms', kind: ms(50, 600_000), default: 3000, help: 'cluster: how long a Redis command may take; over it a publish answers outcome_unknown (it may have happened) and the node reports degraded until Redis answers again; on a Redis Cluster also how long a publish waits for a connection to its topic\'s master before it answers unavailable (not sent)' },
  historyTtlMs: { flag: 'history-ttl-ms', kind: ms(0, 365 * 24 * 3_600_000), default: 0, help: 'cluster: a topic\'s history in Redis is dropped this long after its last publish (its seq and epoch stay, so a later resume from before is history_trimmed); bounds Redis memory when topics come and go; 0: kept' },
  redisBatchMs: { flag: 'redis-batch-ms', kind: ms(0, 1000), default: 0, help: 'cluster: least time between two publish calls to Redis; a busy node sends the publishes of that time together (fewer, larger calls: less CPU per message, up to this much more latency); 0: one call per event-loop turn' },
  interestLingerMs: { flag: 'interest-linger-ms', kind: ms(0, 3_600_000), default: 5000, help: 'cluster: how long a node keeps listening to a topic after its last local subscriber left (a client that resubscribes at once costs no SUBSCRIBE); docs/cluster.md, Interest routing' },
  nodeTtlMs: { flag: 'node-ttl-ms', kind: ms(100, 3_600_000), default: 5000, help: 'cluster: a node whose heartbeat is this old is taken for dead by the others (its clients time out)' },
  nodeTickMs: { flag: 'node-tick-ms', kind: ms(20, 600_000), default: 1500, help: 'cluster: how often a node refreshes its heartbeat and looks for dead nodes (well under --node-ttl-ms)' },
  nodeHangMs: { flag: 'node-hang-ms', kind: ms(100, 3_600_000), default: 30_000, help: 'cluster: a node whose event loop is stuck this long stops heartbeating (then reaped like a dead one); at least --node-ttl-ms' },
  hookUrl: { flag: 'hook-url', kind: { type: 'string' }, default: undefined, help: 'the application backend (docs/integration.md): hooks are POSTed to <url>/connect, /subscribe, /publish, /rpc (those named by --hooks); webhooks to <url>/events' },
  hookConnectUrl: { flag: 'hook-connect-url', kind: { type: 'string' }, default: undefined, help: 'the connect hook\'s own URL, instead of <--hook-url>/connect (without --hook-url: only the kinds with their own URL are on)' },
  hookSubscribeUrl: { flag: 'hook-subscribe-url', kind: { type: 'string' }, default: undefined, help: 'the subscribe hook\'s own URL, instead of <--hook-url>/subscribe' },
  hookPublishUrl: { flag: 'hook-publish-url', kind: { type: 'string' }, default: undefined, help: 'the publish hook\'s own URL, instead of <--hook-url>/publish' },
  hookRpcUrl: { flag: 'hook-rpc-url', kind: { type: 'string' }, default: undefined, help: 'the rpc hook\'s own URL, instead of <--hook-url>/rpc' },
  hookEventsUrl: { flag: 'hook-events-url', kind: { type: 'string' }, default: undefined, help: 'where webhooks go, instead of <--hook-url>/events' },
  hooks: { flag: 'hooks', kind: { type: 'string' }, default: 'connect,subscribe,publish,rpc,events', help: 'which hooks are on: a comma-separated subset of connect, subscribe, publish, rpc, events (a kind with no URL, neither --hook-url nor its own, stays off)' },
  hookSecret: { flag: 'hook-secret', kind: { type: 'string' }, default: undefined, help: 'HMAC-SHA256 key: every hook and webhook body is signed in X-Switchboard-Signature: sha256=<hex>; prefer the env var' },
  hookTimeoutMs: { flag: 'hook-timeout-ms', kind: ms(10, 600_000), default: 3_000, help: 'how long a hook call may take; over it the client gets unavailable (rpc: timeout, the outcome is unknown)' },
  hookMaxInflight: { flag: 'hook-max-inflight', kind: { type: 'int', min: 1, max: 1_000_000 }, default: 1_000, help: 'hook calls one process may have waiting on the backend; over it: unavailable at once' },
  hookQueue: { flag: 'hook-queue', kind: { type: 'int', min: 1, max: 10_000 }, default: 64, help: 'requests of one connection waiting behind its hook calls (kept in order); over it: rate_limited' },
  hookBreakerFailures: { flag: 'hook-breaker-failures', kind: { type: 'int', min: 1, max: 1_000_000 }, default: 5, help: 'consecutive failed calls of one hook that open its circuit breaker (unavailable at once while open)' },
  hookBreakerMs: { flag: 'hook-breaker-ms', kind: ms(10, 3_600_000), default: 5_000, help: 'how long an open breaker stays open before one trial call' },
  hookCacheEntries: { flag: 'hook-cache-entries', kind: { type: 'int', min: 0, max: 10_000_000 }, default: 10_000, help: 'hook results kept for the lifetime the backend gave them (cacheMs); 0 = no cache' },
  webhookQueue: { flag: 'webhook-queue', kind: { type: 'int', min: 1, max: 10_000_000 }, default: 100_000, help: 'webhook events waiting to be delivered; over it the newest are dropped, counted and logged' },
  webhookBatch: { flag: 'webhook-batch', kind: { type: 'int', min: 1, max: 10_000 }, default: 100, help: 'webhook events per POST' },
  webhookRetryMs: { flag: 'webhook-retry-ms', kind: ms(1, 600_000), default: 500, help: 'first retry delay of a failed webhook batch (doubled each time, up to 30 s)' },
  serverName: { flag: 'name', kind: { type: 'string' }, default: 'switchboard', help: 'server name sent in hello' },
  logLevel: { flag: 'log-level', kind: { type: 'enum', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] }, default: 'info', help: 'pino log level' },
  inspect: { flag: 'inspect', kind: { type: 'string', bare: 'ws://localhost:8090' }, default: undefined, help: 'send actor inspection events to the Stately Inspector bridge (`switchboard inspect`) at this WebSocket URL; `--inspect` alone means ws://localhost:8090' },
} satisfies Record<keyof Config, Setting>;

/** The validated settings of one broker process. */
export interface Config {
  host: string;
  port: number;
  tcpPort: number;
  /** MQTT listener port; 0 = off. */
  mqttPort: number;
  mqttSessions: number;
  mqttRetainedBytes: number;
  mqttReceiveMaximum: number;
  mqttMaxKeepalive: number;
  /** The acl (JSON) of MQTT clients without a token; undefined = none (refused when tokens are required). */
  mqttAnonymousAcl: string | undefined;
  heartbeatMs: number;
  idleMs: number;
  idleGraceMs: number;
  idleClose: 'tcp' | 'all' | 'none';
  closeTimeoutMs: number;
  mailboxSize: number;
  mailboxBytes: number;
  slowConsumer: 'close' | 'drop-oldest';
  maxPayload: number;
  maxSubscriptions: number;
  historySize: number;
  historyBytes: number;
  historyTopicBytes: number;
  replayBytes: number;
  maxTopics: number;
  topicNamesBytes: number;
  room: string;
  roomAddresses: 'show' | 'hide';
  roomAnnounceMax: number;
  renameRate: number;
  lineLimit: number;
  /** Bearer key required by /api/*; undefined = the API is open. */
  apiKey: string | undefined;
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** headersTimeout and requestTimeout of the HTTP port. */
  httpTimeoutMs: number;
  rate: number;
  rateBurst: number;
  rateStrikes: number;
  allowedOrigins: string | undefined;
  /** host[:port] names the broker is reached by, trusted as page origins; the request's Host header never is. */
  publicHost: string | undefined;
  authSecret: string | undefined;
  authJwks: string | undefined;
  /** How long a connection whose token expired may go on before it is closed with 4003, unless it sends a fresh one. */
  tokenGraceMs: number;
  /** Redis of the cluster; undefined = the in-memory engine. */
  redisUrl: string | undefined;
  /** Worker processes of `serve` (1 = this process is the broker, no primary). */
  workers: number;
  redisMaxInflight: number;
  redisTimeoutMs: number;
  redisBatchMs: number;
  /** Cluster: a topic's history list expires this long after its last publish (0: never). */
  historyTtlMs: number;
  interestLingerMs: number;
  nodeTtlMs: number;
  nodeTickMs: number;
  nodeHangMs: number;
  /** The application backend's base URL; undefined = no hooks, no webhooks. */
  hookUrl: string | undefined;
  /** Per-kind URLs that replace <hookUrl>/<kind>. */
  hookConnectUrl: string | undefined;
  hookSubscribeUrl: string | undefined;
  hookPublishUrl: string | undefined;
  hookRpcUrl: string | undefined;
  hookEventsUrl: string | undefined;
  hooks: string;
  hookSecret: string | undefined;
  hookTimeoutMs: number;
  hookMaxInflight: number;
  hookQueue: number;
  hookBreakerFailures: number;
  hookBreakerMs: number;
  hookCacheEntries: number;
  webhookQueue: number;
  webhookBatch: number;
  webhookRetryMs: number;
  serverName: string;
  logLevel: string;
  /** WebSocket URL of the inspector bridge; undefined = inspection off (no observer at all). */
  inspect: string | undefined;
}

export const defaults: Config = Object.fromEntries(
  Object.entries(SETTINGS).map(([k, s]) => [k, s.default]),
) as unknown as Config;

/** The WebSocket endpoint of a broker started with the defaults: where sub, chat and check look without --url. */
export const LOCAL_WS_URL = `ws://${defaults.host}:${defaults.port}/ws`;

export function envName(flag: string): string {
  return 'SWITCHBOARD_' + flag.toUpperCase().replace(/-/g, '_');
}

/** Parses `argv` (flags after the subcommand) and `env`; throws ConfigError with a clear message. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = {}): Config & { help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const s of Object.values(SETTINGS) as Setting[]) options[s.flag] = { type: s.kind.type === 'bool' ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: withBareValues(argv), options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const out: Record<string, unknown> = { help: values.help === true };
  for (const [key, s] of Object.entries(SETTINGS) as [string, Setting][]) {
    const fromFlag = values[s.flag];
    const fromEnv = env[envName(s.flag)];
    const raw = fromFlag ?? fromEnv;
    const source = fromFlag !== undefined ? `--${s.flag}` : envName(s.flag);
    out[key] = raw === undefined ? s.default : coerce(raw, s.kind, source);
  }
  return out as unknown as Config & { help: boolean };
}

/** `--flag` given without a value, for string settings that have a `bare` value (e.g. `--inspect`), becomes `--flag=<bare>`. */
function withBareValues(argv: string[]): string[] {
  const bare = new Map<string, string>();
  for (const s of Object.values(SETTINGS) as Setting[]) if (s.kind.type === 'string' && s.kind.bare) bare.set(`--${s.flag}`, s.kind.bare);
  return argv.map((arg, i) => {
    const value = bare.get(arg);
    const next = argv[i + 1];
    return value !== undefined && (next === undefined || next.startsWith('-')) ? `${arg}=${value}` : arg;
  });
}

function coerce(raw: string | boolean, kind: Kind, source: string): string | number | boolean {
  switch (kind.type) {
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw new ConfigError(`${source} must be true or false, got '${raw}'`);
    case 'int': {
      const text = String(raw).trim();
      if (!/^-?\d+$/.test(text)) throw new ConfigError(`${source} must be a whole number, got '${raw}'`);
      const n = Number(text);
      if (n < kind.min || n > kind.max) throw new ConfigError(`${source} must be between ${kind.min} and ${kind.max}, got ${n}`);
      return n;
    }
    case 'enum':
      if (!kind.values.includes(String(raw))) throw new ConfigError(`${source} must be one of ${kind.values.join(', ')}, got '${raw}'`);
      return String(raw);
    case 'string':
      if (String(raw).length === 0) throw new ConfigError(`${source} must not be empty`);
      return String(raw);
  }
}

/** The settings as a Markdown table for README (kept current by `npm run docs`). */
export function settingsTable(): string {
  const rows = (Object.values(SETTINGS) as Setting[]).map((s) => {
    const def = s.default === undefined ? '—' : `\`${s.default}\``;
    return `| \`--${s.flag}\` | \`${envName(s.flag)}\` | ${def} | ${s.help.replace(/\|/g, '\\|')} |`;
  });
  return ['| flag | environment | default | meaning |', '|---|---|---|---|', ...rows].join('\n') + '\n';
}

export function helpText(): string {
  const rows = (Object.values(SETTINGS) as Setting[]).map((s) => {
    const arg = s.kind.type === 'bool' ? '' : s.kind.type === 'enum' ? ` <${s.kind.values.join('|')}>` : s.kind.type === 'int' ? ' <n>' : s.kind.bare ? ' [text]' : ' <text>';
    const def = s.default === undefined ? '' : ` (default ${s.default})`;
    return `  --${s.flag}${arg}\n      ${s.help}${def}; env ${envName(s.flag)}`;
  });
  return ['Usage: switchboard serve [options]', '', 'Runs the broker. Flags override SWITCHBOARD_* environment variables.', '', ...rows, '  --help\n      show this help'].join('\n');
}


/** Checks that need more than one setting or another module's rules. */
export function validateConfig(config: Config): void {
  const roomError = topicError(config.room);
  if (roomError) throw new ConfigError(`--room must be a topic: ${roomError}`);
  if (config.tcpPort !== 0 && config.tcpPort === config.port) throw new ConfigError('--port and --tcp-port must differ');
  if (config.mqttPort !== 0 && (config.mqttPort === config.port || config.mqttPort === config.tcpPort)) throw new ConfigError('--mqtt-port must differ from --port and --tcp-port');
  if (config.mqttAnonymousAcl !== undefined) {
    let acl: unknown;
    try {
      acl = JSON.parse(config.mqttAnonymousAcl);
    } catch {
      throw new ConfigError(`--mqtt-anonymous-acl must be a JSON object like a token's acl, got '${config.mqttAnonymousAcl.slice(0, 80)}'`);
    }
    if (typeof acl !== 'object' || acl === null || Array.isArray(acl)) throw new ConfigError('--mqtt-anonymous-acl must be a JSON object like a token\'s acl');
  }
  if (config.authSecret !== undefined && config.authJwks !== undefined) throw new ConfigError('--auth-secret and --auth-jwks are exclusive: pick one');
  if (config.redisUrl !== undefined) checkTlsFiles(redisTarget(config.redisUrl));
  if (config.nodeTickMs * 2 > config.nodeTtlMs) {
    throw new ConfigError(`--node-tick-ms ${config.nodeTickMs} must be at most half of --node-ttl-ms ${config.nodeTtlMs}: a node refreshes its heartbeat at least twice per TTL, or a late tick gets it reaped while alive`);
  }
  if (config.workers > 1 && config.redisUrl === undefined) {
    throw new ConfigError(`--workers ${config.workers} needs --redis: workers share nothing without the cluster engine (docs/cluster.md); drop --workers or add --redis redis://host:port`);
  }
  for (const [key, flag] of [['hookUrl', 'hook-url'], ['hookConnectUrl', 'hook-connect-url'], ['hookSubscribeUrl', 'hook-subscribe-url'], ['hookPublishUrl', 'hook-publish-url'], ['hookRpcUrl', 'hook-rpc-url'], ['hookEventsUrl', 'hook-events-url']] as const) {
    const url = config[key];
    if (url !== undefined && !parsesAs(url, ['http:', 'https:'])) throw new ConfigError(`--${flag} is an http(s):// URL of the application backend, got '${url}'`);
  }
  for (const kind of config.hooks.split(',')) {
    if (!['connect', 'subscribe', 'publish', 'rpc', 'events', ''].includes(kind.trim())) throw new ConfigError(`--hooks: unknown hook '${kind}' (connect, subscribe, publish, rpc, events)`);
  }
  if (config.inspect !== undefined && !parsesAs(config.inspect, ['ws:', 'wss:'])) {
    throw new ConfigError(`--inspect takes the bridge's WebSocket URL (ws://host:port), got '${config.inspect}'`);
  }
}

/** Whether `url` is a URL (WHATWG: a valid port, no spaces in the host) with one of these schemes and a host. */
function parsesAs(url: string, schemes: readonly string[]): boolean {
  try {
    const u = new URL(url);
    return schemes.includes(u.protocol) && u.hostname !== '';
  } catch {
    return false;
  }
}

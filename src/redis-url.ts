// The forms of `--redis` (docs/cluster.md): one Redis by URL (redis://, rediss:// with the PEM files it names), on a
// Unix socket (unix://), through Sentinel (redis+sentinel://), or a Redis Cluster (redis+cluster://), the last two
// over TLS too (rediss+sentinel://, rediss+cluster://); read into what the cluster engine connects to
// (src/engine/redis/connections.ts), and shown without passwords.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { ConfigError } from './config-error.js';

/**
 * Where the cluster engine's Redis is: one server (its URL, as ioredis takes it), one server on this host's Unix socket
 * (its path and options, as ioredis takes them), the master Sentinel names (the Sentinels and the master's name), or a
 * Redis Cluster's seed nodes.
 */
export type RedisTarget =
  | { cluster: false; url: string; tls?: TlsFiles }
  | { cluster: false; socket: UnixSocketTarget }
  | { cluster: false; sentinel: SentinelTarget }
  | { cluster: true; nodes: { host: string; port: number }[]; username?: string; password?: string; tls?: TlsFiles };

/**
 * A Redis whose master Sentinel names: `redis+sentinel://[user:pass@]host:port,host:port/<master name>`, then at most
 * `?db=N&sentinelUsername=U&sentinelPassword=P`. The userinfo is the Redis servers' credentials; the Sentinels' own
 * are the query's (none: they are asked without any). `rediss+sentinel://`: the Sentinels and the Redis servers are
 * reached over TLS (`tls`, with the PEM files the query names, as rediss://'s).
 */
export interface SentinelTarget {
  sentinels: { host: string; port: number }[];
  name: string;
  db?: number;
  username?: string;
  password?: string;
  sentinelUsername?: string;
  sentinelPassword?: string;
  tls?: TlsFiles;
}

/**
 * The PEM files of a `rediss://` URL's `tlsCa`, `tlsCert` and `tlsKey` (paths): the CAs trusted to have signed the
 * server's certificate (instead of Node's), and the client certificate and key for a Redis that asks for one. On a
 * Redis Cluster or through Sentinel, `tls` is there (maybe empty: Node's CAs, no client certificate) iff the scheme is
 * rediss+…; on one server, only when a file is named (rediss:// itself is ioredis's).
 */
export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** A Redis on a Unix domain socket: `unix://[user:pass@]/absolute/path[?db=N]`. */
export interface UnixSocketTarget {
  path: string;
  db?: number;
  username?: string;
  password?: string;
}

/** `user:pass` of a URL, percent-decoded; throws `bad` on a malformed escape. */
function credentials(userinfo: string | undefined, bad: (why: string) => ConfigError): { username?: string; password?: string } {
  if (userinfo === undefined) return {};
  const colon = userinfo.indexOf(':');
  try {
    return {
      username: decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon)) || undefined,
      password: colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1)) || undefined,
    };
  } catch {
    throw bad('malformed percent-escape in the credentials');
  }
}

/** A rediss:// URL's query keys for its PEM files, and the TlsFiles field each names. */
const TLS_PARAMS = { tlsCa: 'ca', tlsCert: 'cert', tlsKey: 'key' } as const;

/** ioredis options the engine sets on its connections (connections.ts), which a `--redis` URL's query may not. */
const ENGINE_OWNED = new Set(['lazyConnect', 'enableOfflineQueue', 'maxRetriesPerRequest', 'autoResendUnfulfilledCommands', 'autoResubscribe', 'commandTimeout', 'connectionName', 'retryStrategy']);

/** A `--redis` URL as it may be shown (messages, logs): its passwords replaced by `***`. */
export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/([^@/]*?):[^@/]*@/, '//$1:***@').replace(/([?&]sentinelPassword=)[^&#]*/gi, '$1***');
}

/**
 * Reads `--redis`: `redis://host:port[/db]` or `rediss://…` (one server), `unix:///path/to/redis.sock[?db=N]` (one
 * server on this host's Unix socket), `redis+sentinel://host:port,…/<master name>[?db=N]` (the master Sentinel names),
 * or `redis+cluster://[user:pass@]host:port,host:port,…` (a Redis Cluster: a few of its nodes, the rest is
 * discovered); `rediss+sentinel://` and `rediss+cluster://` reach them over TLS (the query may name the PEM files,
 * as rediss://'s). Throws ConfigError with the accepted forms.
 */
export function redisTarget(url: string): RedisTarget {
  const shown = redactRedisUrl(url); // no password in the message
  const bad = (why: string) => new ConfigError(`--redis: ${why}, got '${shown}' (forms: redis://host:port, rediss://host:port, unix:///path/to/redis.sock, redis+sentinel://host:port,host:port/mymaster, redis+cluster://host:port,host:port,…, rediss+sentinel://…, rediss+cluster://…)`);
  /** A query's `key=value`: its key, whether it has a value, and the value percent-decoded (what follows the `=`, or the whole pair). */
  const param = (pair: string) => {
    const eq = pair.indexOf('=');
    const value = () => {
      try {
        return decodeURIComponent(pair.slice(eq + 1));
      } catch {
        throw bad('malformed percent-escape in the query');
      }
    };
    return { key: eq < 0 ? pair : pair.slice(0, eq), hasValue: eq >= 0, value };
  };
  /** host:port,host:port (each a name, an IPv4 or a bracketed IPv6 address). */
  const hostPorts = (list: string, what: string) =>
    list.split(',').map((entry) => {
      const node = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/.exec(entry.trim());
      if (!node || Number(node[3]) < 1 || Number(node[3]) > 65535) throw bad(`a ${what} is host:port, not '${entry}'`);
      return { host: node[1] ?? node[2]!, port: Number(node[3]) };
    });
  // The TLS files a query names (tlsCa, tlsCert, tlsKey), each once; allowed only under a rediss… scheme.
  const overTls = /^rediss[:+]/i.test(url);
  let tls: TlsFiles | undefined;
  /** Reads `pair` into `tls` if it names a PEM file; false if its key is not one of TLS_PARAMS. */
  const tlsPair = (pair: string): boolean => {
    const { key, hasValue, value: decoded } = param(pair);
    const field = Object.hasOwn(TLS_PARAMS, key) ? TLS_PARAMS[key as keyof typeof TLS_PARAMS] : undefined;
    if (field === undefined) return false;
    const value = decoded();
    if (!hasValue || value === '' || tls?.[field] !== undefined) throw bad(`${key} is the path of a PEM file, given once`);
    (tls ??= {})[field] = value;
    return true;
  };
  /** The files read, checked whole: only over TLS, and a certificate with its key. */
  const tlsFiles = (): TlsFiles | undefined => {
    if (tls === undefined) return undefined;
    if (!overTls) throw bad('tlsCa, tlsCert and tlsKey are for a Redis over TLS (rediss://, rediss+cluster://, rediss+sentinel://)');
    if ((tls.cert === undefined) !== (tls.key === undefined)) throw bad('a client certificate needs both tlsCert and tlsKey');
    return tls;
  };
  const m = /^rediss?\+cluster:\/\/(?:([^@/]*)@)?([^/?#@]*)\/?(?:\?([^#\s]*))?$/i.exec(url);
  if (m) {
    const { username, password } = credentials(m[1], bad);
    for (const pair of m[3] ? m[3].split('&') : []) {
      if (!tlsPair(pair)) throw bad('a Redis Cluster URL lists host:port nodes and nothing else (no database; over TLS, ?tlsCa=&tlsCert=&tlsKey= at most)');
    }
    const files = tlsFiles();
    return { cluster: true, nodes: hostPorts(m[2]!, 'Redis Cluster node'), username, password, ...(overTls ? { tls: files ?? {} } : {}) };
  }
  if (/^rediss?\+cluster:/i.test(url)) throw bad('a Redis Cluster URL lists host:port nodes and nothing else (no database; over TLS, ?tlsCa=&tlsCert=&tlsKey= at most)');
  if (/^rediss?\+sentinel:/i.test(url)) {
    const form = 'a Sentinel URL is redis+sentinel://host:port,host:port/<master name>, then at most ?db=N&sentinelUsername=U&sentinelPassword=P (over TLS, rediss+sentinel://, and tlsCa, tlsCert, tlsKey)';
    const t = /^rediss?\+sentinel:\/\/(?:([^@/]*)@)?([^/?#@]+)\/([A-Za-z0-9._-]{1,128})(?:\?([^#\s]*))?$/i.exec(url);
    if (!t) throw bad(form);
    const { username, password } = credentials(t[1], bad);
    const sentinel: SentinelTarget = { sentinels: hostPorts(t[2]!, 'Sentinel'), name: t[3]!, ...(username === undefined ? {} : { username }), ...(password === undefined ? {} : { password }) };
    for (const pair of t[4] ? t[4].split('&') : []) {
      if (tlsPair(pair)) continue;
      const { key, hasValue, value: decoded } = param(pair);
      const value = decoded();
      if (!hasValue || value === '' || (key !== 'db' && key !== 'sentinelUsername' && key !== 'sentinelPassword') || key in sentinel) throw bad(form);
      if (key === 'db') {
        if (!/^\d{1,4}$/.test(value)) throw bad(form);
        sentinel.db = Number(value);
      } else sentinel[key] = value;
    }
    const files = tlsFiles();
    if (overTls) sentinel.tls = files ?? {};
    return { cluster: false, sentinel };
  }
  if (/^unix:/i.test(url)) {
    const u = /^unix:\/\/(?:([^@/]*)@)?(\/[^?#\s]*[^/?#\s])(?:\?db=(\d{1,4}))?$/i.exec(url);
    if (!u) throw bad('a Unix socket is unix:// and its absolute path, with ?db=N at most (unix:///run/redis/redis.sock?db=1)');
    const { username, password } = credentials(u[1], bad);
    const socket: UnixSocketTarget = { path: u[2]!, ...(u[3] === undefined ? {} : { db: Number(u[3]) }), ...(username === undefined ? {} : { username }), ...(password === undefined ? {} : { password }) };
    return { cluster: false, socket };
  }
  const single = /^rediss?:\/\/(?=\S)([^\s/?#]*)\S*$/.exec(url);
  if (!single) throw bad('not a redis:// URL');
  if (single[1]!.split('@').at(-1)!.includes(',')) throw bad('several nodes are a Redis Cluster: write redis+cluster://host:port,host:port');
  // tlsCa, tlsCert, tlsKey: taken out of the query (the rest of it is ioredis's options, as before).
  const q = url.indexOf('?');
  if (q < 0) return { cluster: false, url };
  const kept: string[] = [];
  for (const pair of url.slice(q + 1).split('&')) {
    // ioredis lets a URL's query override the options it is given: not those the engine's guarantees rest on.
    const { key } = param(pair);
    if (ENGINE_OWNED.has(key)) throw bad(`${key} is set by the broker (its connections' safety rests on it), not by the URL`);
    if (!tlsPair(pair)) kept.push(pair);
  }
  const files = tlsFiles();
  if (files === undefined) return { cluster: false, url };
  return { cluster: false, url: url.slice(0, q) + (kept.length > 0 ? `?${kept.join('&')}` : ''), tls: files };
}

/**
 * Throws ConfigError if a PEM file that `target` names cannot be read, or cannot be what it is named for (at start,
 * not at the first connection, whose failure would only say that Redis could not be reached): a CA file without a
 * certificate, a client certificate and key that are not PEM or not a pair.
 */
export function checkTlsFiles(target: RedisTarget): void {
  const files = target.cluster || 'url' in target ? target.tls : 'sentinel' in target ? target.sentinel.tls : undefined;
  if (files === undefined) return;
  const name = (field: string) => Object.keys(TLS_PARAMS).find((k) => TLS_PARAMS[k as keyof typeof TLS_PARAMS] === field);
  const text: TlsFiles = {};
  for (const [field, path] of Object.entries(files) as [keyof TlsFiles, string][]) {
    try {
      text[field] = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`--redis: the ${name(field)} file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`);
    }
  }
  if (text.ca !== undefined) {
    try {
      new X509Certificate(text.ca); // the first certificate of the file (a bundle may hold more)
    } catch {
      throw new ConfigError(`--redis: the tlsCa file ${files.ca} holds no PEM certificate`);
    }
  }
  if (text.cert !== undefined) {
    try {
      createSecureContext({ cert: text.cert, key: text.key });
    } catch (err) {
      throw new ConfigError(`--redis: the tlsCert and tlsKey files (${files.cert}, ${files.key}) are not a PEM certificate and its key (${(err as Error).message})`);
    }
  }
}

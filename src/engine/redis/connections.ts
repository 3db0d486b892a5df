// The two Redis connections of the cluster engine: commands and the subscriber, on one Redis server or a Redis Cluster.
// On a Redis Cluster, commands go through an ioredis `Cluster` (each key to its slot's master; every script touches one
// slot), and the classic subscriber (presence, directs, calls) is one plain connection to one node at a time: a classic
// PUBLISH on any shard reaches the subscribers of every node, so one node suffices. Messages are sharded (shards.ts).
// The subscriber is this module's own, not ioredis's Cluster pub/sub, because the engine must know when a new subscription is live (then it fetches what it missed from the streams):
// `ready` is emitted after the channels are subscribed on the new node.
import { EventEmitter } from 'node:events';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext, type ConnectionOptions, type SecureContext } from 'node:tls';
import { redisTarget, type RedisTarget, type SentinelTarget, type TlsFiles, type UnixSocketTarget } from '../../redis-url.js';
import type { HeartbeatOptions } from './heartbeat.js';

type Node = { host: string; port: number };

/**
 * A Redis Cluster over TLS: its seed nodes are connected to by the names given, not the addresses they resolve to
 * (ioredis's default), so that a certificate naming the host passes the check. The nodes the cluster announces are
 * connected to as announced (an address, or a host name with Redis 7's `cluster-preferred-endpoint-type hostname`).
 */
const keepHostName = (hostname: string, callback: (err: null, address: string) => void) => callback(null, hostname);

/** How soon a lost connection (or a look through the Sentinels) is tried again: 100 ms more each time, up to 1 s. */
const retryStrategy = (times: number) => Math.min(100 * times, 1000);

export interface RedisConnections {
  cmd: Redis | Cluster;
  bus: PlainSubscriber | ClusterSubscriber;
  /** On a Redis Cluster: the options of the sharded subscriber connections (shards.ts), one per master. */
  sharded?: RedisOptions;
}

/**
 * The engine's connections for `url` (redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://); nothing
 * connects before connect(). Through Sentinel, `switched` is called when a Sentinel announces a new master (the
 * commands connection's watch, once per new master), so that a connection of the node's outside this module (the
 * heartbeat thread's) moves too.
 */
export function redisConnections(url: string, name: string, commandTimeoutMs = 3000, switched?: () => void): RedisConnections {
  const target = redisTarget(url);
  if (!target.cluster) {
    const server = serverOf(target);
    // (Through Sentinel, asking the Sentinels again is paced alike: ioredis's own pace starts at 10 ms.)
    const common = { lazyConnect: true, retryStrategy, sentinelRetryStrategy: retryStrategy, maxRetriesPerRequest: 1 };
    // Commands fail at once while disconnected (no offline queue): the client gets `unavailable`, memory stays bounded.
    // Commands in flight when the connection breaks fail too (they may have run: a publish is `outcome_unknown`),
    // never sent again by ioredis on the next connection, where a publish that had run would run twice.
    return {
      cmd: connectTo(server, { ...common, enableOfflineQueue: false, autoResendUnfulfilledCommands: false, commandTimeout: commandTimeoutMs, connectionName: name }, switched),
      bus: new PlainSubscriber(server, { ...common, connectionName: `${name}-sub` }),
    };
  }
  // Over TLS (rediss+cluster://) every connection is: commands, both subscribers, the heartbeat thread's.
  const auth = { username: target.username, password: target.password, ...(target.tls ? { tls: tlsOptions(target.tls) } : {}) };
  const cmd = new Cluster(target.nodes, {
    lazyConnect: true,
    ...(target.tls ? { dnsLookup: keepHostName } : {}),
    // No offline queue here either: while the cluster is not ready, commands fail at once (→ `unavailable`).
    enableOfflineQueue: false,
    clusterRetryStrategy: retryStrategy,
    redisOptions: { ...auth, maxRetriesPerRequest: 1, autoResendUnfulfilledCommands: false, commandTimeout: commandTimeoutMs, connectionName: name },
  });
  // The subscriber's candidates: the nodes the command connection knows (masters and replicas), then the seeds.
  const candidates = (): Node[] => {
    const known = cmd.status === 'ready' ? cmd.nodes('all').map((n) => ({ host: n.options.host ?? '', port: n.options.port ?? 0 })) : [];
    const all = [...known, ...target.nodes];
    return all.filter((n, i) => n.host !== '' && all.findIndex((m) => m.host === n.host && m.port === n.port) === i);
  };
  return { cmd, bus: new ClusterSubscriber(candidates, { ...auth, connectionName: `${name}-sub` }), sharded: { ...auth, connectionName: `${name}-ssub` } };
}

/**
 * One Redis server: by its URL (redis://, rediss:// with the PEM files it names), on a Unix socket by its path and
 * options (unix://), or the master Sentinel names (redis+sentinel://).
 */
export type RedisServer = { url: string; tls?: TlsFiles | undefined } | UnixSocketTarget | SentinelTarget;

/** The one server a target other than a Redis Cluster names. */
function serverOf(target: Exclude<RedisTarget, { cluster: true }>): RedisServer {
  return 'socket' in target ? target.socket : 'sentinel' in target ? target.sentinel : { url: target.url, tls: target.tls };
}

/**
 * ioredis's options for a server on a Unix socket or through Sentinel. Over TLS (rediss+sentinel://), both the
 * Sentinels and the master are reached with the PEM files' contents: `sentinelTLS` for the Sentinels, `tls` with
 * `enableTLSForSentinelMode` for the master (without that flag ioredis would drop `tls` there).
 */
function serverOptions(server: UnixSocketTarget | SentinelTarget): RedisOptions {
  if (!('sentinels' in server) || server.tls === undefined) return server as RedisOptions;
  const { tls, ...rest } = server;
  const files = tlsOptions(tls);
  return { ...rest, tls: files, sentinelTLS: files, enableTLSForSentinelMode: true };
}

/** What identifies a file's version: a rotated certificate (written anew, or renamed into place) changes it. */
function stampOf(path: string | undefined): string {
  if (path === undefined) return '';
  const s = statSync(path);
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}

/**
 * A TLS URL's PEM files as ioredis's `tls` option, read again whenever one of them changes: every connection, first or
 * reconnecting, reads `secureContext`, so a rotated CA or client certificate is used from the next connection on,
 * without a restart. A file that cannot be read then (a rotation half done) leaves the last context in use; the next
 * connection looks again. No file named: Node's defaults. The heartbeat thread does the same from the paths
 * (heartbeat.ts `freshTls`): a context cannot cross to a thread.
 */
export function tlsOptions(files: TlsFiles): ConnectionOptions {
  if (files.ca === undefined && files.cert === undefined && files.key === undefined) return {};
  let stamp = '';
  let context: SecureContext | undefined;
  return Object.defineProperty({}, 'secureContext', {
    enumerable: true, // ioredis copies the option's fields into each connection's
    get(): SecureContext | undefined {
      try {
        const now = [files.ca, files.cert, files.key].map(stampOf).join(' ');
        if (now !== stamp) {
          const read = (path: string | undefined) => (path === undefined ? undefined : readFileSync(path));
          context = createSecureContext({ ca: read(files.ca), cert: read(files.cert), key: read(files.key) });
          stamp = now;
        }
      } catch {
        // unreadable or mismatched for now: the last context, or none (this connection fails and is tried again)
      }
      return context;
    },
  }) as ConnectionOptions;
}

/**
 * An ioredis connection to `server` with `options`. Through Sentinel, a connection that closes asks the Sentinels for
 * the master again, and a connection leaves a master as soon as a Sentinel announces its successor (watchFailovers,
 * which also calls `switched`).
 */
export function connectTo(server: RedisServer, options: RedisOptions, switched?: () => void): Redis {
  if ('url' in server) return new Redis(server.url, server.tls ? { ...options, tls: tlsOptions(server.tls) } : options);
  const own = serverOptions(server);
  const conn = new Redis({ ...own, ...options });
  // (The watch reaches the Sentinels as the connection does: over TLS with the files read here, once.)
  if ('sentinels' in server) watchFailovers(conn, server, own.sentinelTLS, switched);
  return conn;
}

/**
 * Reconnects `conn` when a Sentinel announces a new master for its name (`+switch-master`), if it is connected: a
 * master failed over while alive (SENTINEL FAILOVER, a partition) would otherwise keep the node's writes until Sentinel
 * demotes it and closes its clients (8–9 s in the test), and what it took meanwhile is lost when it resyncs from its
 * successor. One connection per Sentinel, for as long as `conn` lives; each new master is acted on once, however many
 * Sentinels announce it.
 * Not ioredis's own `failoverDetector`: a connection that was already reconnecting (its master died) when the
 * announcement came was ended by it for good (ioredis 6.0: the detector's disconnect aborts the connector's retry loop
 * with "Connection is closed.", and the connection never reconnects); this one leaves reconnecting connections alone,
 * since they ask the Sentinels anyway.
 */
function watchFailovers(conn: Redis, target: SentinelTarget, tls: RedisOptions['sentinelTLS'], switched?: () => void): void {
  let acted = '';
  let ended = false;
  let watchers: Redis[] = [];
  // From its first connection on (a connection never used, never watched), until it ends.
  conn.once('ready', () => {
    if (!ended) watchers = target.sentinels.map(watch);
  });
  conn.once('end', () => {
    ended = true;
    for (const w of watchers) w.disconnect();
  });
  function watch({ host, port }: { host: string; port: number }): Redis {
    const watcher = new Redis({ host, port, username: target.sentinelUsername, password: target.sentinelPassword, lazyConnect: true, retryStrategy, ...(tls ? { tls } : {}) });
    watcher.on('error', () => {}); // a Sentinel that is down: the others, or the connection's own retries, do
    watcher.on('message', (_channel: string, message: string) => {
      const [name, , , host, port] = message.split(' ');
      const next = `${host}:${port}`;
      if (name !== target.name || next === acted) return;
      acted = next;
      switched?.();
      if (conn.status === 'ready') conn.disconnect(true);
    });
    watcher.subscribe('+switch-master').catch(() => {});
    return watcher;
  }
}

/** How the heartbeat thread (heartbeat.ts) reaches the same Redis: the URL, socket or Sentinels, or the cluster's seeds and credentials. */
export function heartbeatConnect(url: string): HeartbeatOptions['connect'] {
  const target = redisTarget(url);
  // The thread gets the PEM files' paths, and reads them as the main connections do (tlsOptions).
  if (target.cluster) return { seeds: target.nodes, username: target.username, password: target.password, ...(target.tls ? { tls: target.tls } : {}) };
  const server = serverOf(target);
  if ('url' in server) return server.tls ? { url: server.url, tls: server.tls } : { url: server.url };
  if ('sentinels' in server && server.tls !== undefined) {
    const { tls, ...options } = server;
    return { options, tls };
  }
  return { options: server };
}

/**
 * The subscriber connection to one Redis: one ioredis connection that subscribes its channels again after each
 * reconnect, as ioredis's `autoResubscribe` would, but on a promise of its own. ioredis leaves the promise of its own
 * resubscription unhandled: a connection closed while that SUBSCRIBE was unanswered (a node stopping right after a
 * reconnect) raised an unhandled rejection, "Connection is closed.". Events as a plain ioredis connection's: `ready`
 * (once the channels are subscribed again), `close`, `error`, `messageBuffer`.
 */
export class PlainSubscriber extends EventEmitter {
  private readonly conn: Redis;
  private readonly channels = new Set<string>();
  private closed = false;

  constructor(server: RedisServer, options: RedisOptions) {
    super();
    const conn = connectTo(server, { ...options, lazyConnect: true, enableOfflineQueue: true, autoResubscribe: false });
    this.conn = conn;
    conn.on('error', (err: Error) => this.emit('error', err));
    conn.on('messageBuffer', (channel: Buffer, message: Buffer) => this.emit('messageBuffer', channel, message));
    conn.on('ready', () => void this.subscribed());
    conn.on('close', () => this.emit('close'));
  }

  get status(): string {
    return this.conn.status;
  }

  /** Resolves once connected and subscribed (ready); the caller bounds the wait. */
  connect(): Promise<void> {
    const ready = new Promise<void>((resolve) => this.once('ready', () => resolve()));
    return this.conn.connect().then(() => ready);
  }

  /** Subscribes now (queued while disconnected), and again after every reconnect. */
  async subscribe(...channels: string[]): Promise<void> {
    for (const c of channels) this.channels.add(c);
    await this.conn.subscribe(...channels);
  }

  async unsubscribe(...channels: string[]): Promise<void> {
    for (const c of channels) this.channels.delete(c);
    await this.conn.unsubscribe(...channels);
  }

  disconnect(): void {
    this.closed = true;
    this.conn.disconnect();
  }

  private async subscribed(): Promise<void> {
    if (this.channels.size > 0) {
      try {
        await this.conn.subscribe(...this.channels);
      } catch (err) {
        // Closed again before the answer: the next `ready` subscribes again (or the node is stopping).
        if (!this.closed) this.emit('error', err as Error);
        return;
      }
    }
    if (!this.closed) this.emit('ready');
  }
}

/**
 * A subscriber connection to one node of a Redis Cluster at a time. A node that stays unreachable (3 reconnects) is
 * given up for the next candidate. Events as a plain ioredis connection's: `ready` (once the channels are subscribed
 * on the current node), `close`, `error`, `messageBuffer`.
 */
export class ClusterSubscriber extends EventEmitter {
  status: 'wait' | 'connecting' | 'ready' | 'end' = 'wait';
  private conn: Redis | undefined;
  private readonly channels = new Set<string>();
  private turn = 0;
  private failures = 0;
  /** The node last given up. */
  private gone: Node | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly candidates: () => Node[],
    private readonly options: RedisOptions,
  ) {
    super();
  }

  /** The node subscribed to now (for logs and tests). */
  get node(): Node | undefined {
    return this.conn && { host: this.conn.options.host!, port: this.conn.options.port! };
  }

  /** Resolves once subscribed to some node (ready); the caller bounds the wait. */
  connect(): Promise<void> {
    const ready = new Promise<void>((resolve) => this.once('ready', () => resolve()));
    if (this.status === 'wait') this.open();
    return ready;
  }

  async subscribe(...channels: string[]): Promise<void> {
    for (const c of channels) this.channels.add(c);
    if (this.conn?.status === 'ready') await this.conn.subscribe(...channels);
  }

  async unsubscribe(...channels: string[]): Promise<void> {
    for (const c of channels) this.channels.delete(c);
    if (this.conn?.status === 'ready') await this.conn.unsubscribe(...channels);
  }

  disconnect(): void {
    this.closed = true;
    this.status = 'end';
    clearTimeout(this.timer);
    this.conn?.disconnect();
  }

  private open(): void {
    if (this.closed) return;
    const list = this.candidates();
    let at = list[this.turn++ % list.length]!;
    if (list.length > 1 && at.host === this.gone?.host && at.port === this.gone.port) at = list[this.turn++ % list.length]!;
    this.status = 'connecting';
    const conn = new Redis({
      ...this.options,
      host: at.host,
      port: at.port,
      lazyConnect: true,
      enableOfflineQueue: true,
      autoResubscribe: false, // subscribed here, before `ready` is told
      retryStrategy: (times: number) => (times > 3 ? null : 100 * times),
    });
    this.conn = conn;
    conn.on('error', (err: Error) => this.emit('error', err));
    conn.on('messageBuffer', (channel: Buffer, message: Buffer) => this.emit('messageBuffer', channel, message));
    conn.on('ready', () => void this.subscribed(conn));
    conn.on('close', () => {
      if (this.conn !== conn) return;
      if (this.status === 'ready') this.status = 'connecting';
      this.emit('close');
    });
    conn.on('end', () => {
      if (this.conn !== conn || this.closed) return;
      // This node is gone: the next candidate, a little later each time none answers.
      this.gone = { host: conn.options.host!, port: conn.options.port! };
      this.failures++;
      this.timer = setTimeout(() => this.open(), Math.min(50 * this.failures, 1000));
      this.timer.unref();
    });
    conn.connect().catch(() => undefined); // failures arrive as error / close / end events
  }

  private async subscribed(conn: Redis): Promise<void> {
    try {
      if (this.channels.size > 0) await conn.subscribe(...this.channels);
    } catch (err) {
      this.emit('error', err as Error);
      conn.disconnect(true); // try again (on this node, then the next)
      return;
    }
    if (this.conn !== conn || this.closed) return;
    this.failures = 0;
    this.status = 'ready';
    this.emit('ready');
  }
}

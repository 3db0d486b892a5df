// A redis-server of the test's own on a free port (never the one on 6379), so tests can kill and restart it.
// Missing redis-server skips the cluster tests with a printed reason; under CI (CI=true) that is an error,
// because CI must run them (.ci/run installs it).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import { defaults, type Config } from '../../src/config.js';
import { startBroker } from '../../src/broker.js';
import { createLogger } from '../../src/log.js';
import type { TestBroker } from '../helpers/broker.js';
import { freePort } from '../helpers/ports.js';
import { until } from '../helpers/waits.js';
import { respCommand } from './resp.js';

export const REDIS_SERVER = '/usr/bin/redis-server';
export const REDIS_CLI = '/usr/bin/redis-cli';
export const haveRedis = existsSync(REDIS_SERVER);

/** Call at the top of a cluster test file: prints why its tests are skipped, or fails under CI. */
export function requireRedis(testName: string, cli = false): boolean {
  const missing = !haveRedis ? REDIS_SERVER : cli && !existsSync(REDIS_CLI) ? REDIS_CLI : undefined;
  if (missing === undefined) return true;
  const reason = `${testName}: skipped, ${missing} is missing (apt-get install -y redis-server redis-tools)`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must run the cluster tests`);
  console.warn(reason);
  return false;
}

// Ports for the servers these helpers start (Redis, a proxy) and that tests stop and start again: see ports.ts.
export { freePort, until };

/** Starts redis-server with `args` and resolves once it says `ready` (it accepts connections; rejects if it exits first). */
function spawnRedis(args: string[], ready = 'Ready to accept connections'): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise<ChildProcess>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes(ready)) resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out.slice(-500)}`)));
  });
}

async function killRedis(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

/** PEM files of a test CA, of a server certificate it signed for 127.0.0.1, and of a client certificate (testTls). */
export interface TestTls {
  ca: string;
  cert: string;
  key: string;
  clientCert: string;
  clientKey: string;
  /** A server started with these asks its clients for a certificate signed by the CA (tls-auth-clients yes). */
  authClients?: boolean;
}

/**
 * A CA of the test's own, and a server certificate for 127.0.0.1 and a client certificate signed by it (EC P-256,
 * valid a day), in `dir`; openssl must be installed. `san`: the server certificate's subject alternative names
 * (`DNS:localhost`: a certificate that names a host, not its address).
 */
export async function testTls(dir: string, san = 'IP:127.0.0.1'): Promise<TestTls> {
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileP('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '1', '-subj', '/CN=switchboard test CA');
  await openssl('req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(f('ext'), `subjectAltName=${san}\n`);
  await openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.crt'), '-days', '1', '-extfile', f('ext'));
  await openssl('req', ...ec, '-keyout', f('client.key'), '-out', f('client.csr'), '-subj', '/CN=switchboard node');
  await openssl('x509', '-req', '-in', f('client.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('client.crt'), '-days', '1');
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key') };
}

/**
 * Rotates `tls` in place: a new CA signs a new server and client certificate (made in `dir`, for `san`), written over
 * the files `tls` names, so whatever reads those paths next gets them (the old CA no longer verifies the server, and
 * a server started on them refuses the old client certificate).
 */
export async function rotateTls(tls: TestTls, dir: string, san?: string): Promise<void> {
  mkdirSync(dir);
  const next = await testTls(dir, san);
  for (const [from, to] of [[next.ca, tls.ca], [next.cert, tls.cert], [next.key, tls.key], [next.clientCert, tls.clientCert], [next.clientKey, tls.clientKey]] as const) {
    copyFileSync(from, to);
  }
}

export class TestRedis {
  private child: ChildProcess | undefined;
  /** The server's working directory: its own, new at each start (a replica's full sync writes dump.rdb there, and a
   * server started where one lies would load it: not empty). */
  private dir: string | undefined;

  private constructor(
    readonly port: number,
    /** With `unixSocket`: the socket the server also listens on, in a directory of its own that outlives restarts. */
    readonly socketPath?: string,
    /** With `tls`: the port the server also listens on with TLS (clients asked for a certificate with `tls.authClients`). */
    readonly tlsPort?: number,
    private readonly tls?: TestTls,
  ) {}

  /** `rediss://127.0.0.1:<tlsPort>` (start with `tls`). */
  get tlsUrl(): string {
    if (this.tlsPort === undefined) throw new Error('this TestRedis was started without TLS');
    return `rediss://127.0.0.1:${this.tlsPort}`;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** `unix://<socketPath>`, the form `--redis` takes for a Unix socket (start with `unixSocket`). */
  get socketUrl(): string {
    if (this.socketPath === undefined) throw new Error('this TestRedis was started without a Unix socket');
    return `unix://${this.socketPath}`;
  }

  /** A server on a free port; `unixSocket`: on a Unix socket too (socketUrl); `tls`: on a TLS port too (tlsUrl). */
  static async start(options: { unixSocket?: boolean; tls?: TestTls } = {}): Promise<TestRedis> {
    const socketPath = options.unixSocket ? join(mkdtempSync(join(tmpdir(), 'sb-redis-sock-')), 'redis.sock') : undefined;
    const r = new TestRedis(await freePort(), socketPath, options.tls ? await freePort() : undefined, options.tls);
    await r.restart();
    return r;
  }

  /**
   * (Re)starts the server on the same port, empty (no persistence: a restart loses everything); with `fromSave`, in
   * the same directory, so it loads what the last SAVE wrote there (a restart from an RDB file).
   */
  async restart(fromSave = false): Promise<void> {
    if (!fromSave || !this.dir) {
      this.removeDir();
      this.dir = mkdtempSync(join(tmpdir(), 'sb-redis-'));
    }
    if (this.socketPath !== undefined) mkdirSync(dirname(this.socketPath), { recursive: true });
    const socket = this.socketPath === undefined ? [] : ['--unixsocket', this.socketPath, '--unixsocketperm', '700'];
    // (A replica of it over TLS too: `tls-replication`.)
    const tls = this.tls === undefined ? [] : ['--tls-port', String(this.tlsPort), '--tls-cert-file', this.tls.cert, '--tls-key-file', this.tls.key, '--tls-ca-cert-file', this.tls.ca, '--tls-auth-clients', this.tls.authClients ? 'yes' : 'no', '--tls-replication', 'yes'];
    const child = spawn(REDIS_SERVER, ['--port', String(this.port), '--bind', '127.0.0.1', ...socket, ...tls, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', this.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out.slice(-500)}`)));
    });
  }

  /** Freezes the server (SIGSTOP): connections stay open, nothing is answered — a hung Redis, not a dead one. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  /** Thaws it (SIGCONT): what it was sent meanwhile runs now. */
  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Kills the server (SIGKILL) and waits until it is gone; `keepFiles`: its directory stays (restart(true) loads its RDB file). */
  async stop(keepFiles = false): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
    if (!keepFiles) {
      this.removeDir();
      if (this.socketPath !== undefined) rmSync(dirname(this.socketPath), { recursive: true, force: true });
    }
  }

  private removeDir(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}

const execFileP = promisify(execFile);

/**
 * A master, its replica and one Sentinel watching them (quorum 1, the master down after 500 ms of silence), each a
 * redis-server of the test's own on free ports; with `sentinelPassword`, the Sentinel asks its clients for it
 * (`requirepass`). `url` is the `redis+sentinel://` form `--redis` takes; `failover()` kills the master and resolves
 * once Sentinel has promoted the replica.
 */
export class TestSentinel {
  static readonly MASTER = 'sbmaster';
  /** What Sentinel logged lately (its last 20,000 characters): for a failure's message. */
  output = '';

  private constructor(
    readonly master: TestRedis,
    readonly replica: TestRedis,
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly sentinelPassword?: string,
    /** With `tls`: the port Sentinel also listens on with TLS; it reaches the servers over TLS too (their TLS ports). */
    readonly tlsPort?: number,
    /** The host name Sentinel knows the master by and announces (`announce-hostnames`), and the URL names it by. */
    private readonly announce?: string,
  ) {}

  get url(): string {
    const query = this.sentinelPassword === undefined ? '' : `?sentinelPassword=${encodeURIComponent(this.sentinelPassword)}`;
    return `redis+sentinel://127.0.0.1:${this.port}/${TestSentinel.MASTER}${query}`;
  }

  /** `rediss+sentinel://127.0.0.1:<tlsPort>/<master>` (start with `tls`): Sentinel and the servers over TLS. */
  get tlsUrl(): string {
    if (this.tlsPort === undefined) throw new Error('this TestSentinel was started without TLS');
    return `rediss+sentinel://${this.announce ?? '127.0.0.1'}:${this.tlsPort}/${TestSentinel.MASTER}`;
  }

  /** A SENTINEL subcommand's reply as redis-cli prints it raw (an array's elements one a line), authenticated if need be. */
  async sentinel(...args: string[]): Promise<string> {
    if (this.sentinelPassword === undefined) return redisCli(this.port, 'SENTINEL', ...args);
    const { Redis } = await import('ioredis');
    const admin = new Redis({ port: this.port, host: '127.0.0.1', password: this.sentinelPassword, lazyConnect: true, retryStrategy: () => null });
    const flat = (x: unknown): string => (Array.isArray(x) ? x.map(flat).join('\n') : x === null || x === undefined ? '' : String(x));
    try {
      await admin.connect();
      return flat(await admin.call('SENTINEL', ...args).catch((err: Error) => err.message));
    } finally {
      admin.disconnect();
    }
  }

  /**
   * `tls`: the master and the replica have TLS ports, the replica replicates over TLS, and Sentinel has a TLS port and
   * watches the servers over TLS (`tls-replication yes`): the addresses it names are their TLS ports. `announce`: the
   * master is monitored and announced by that host name (`resolve-hostnames`, `announce-hostnames`), not its address.
   */
  static async start(options: { sentinelPassword?: string; tls?: TestTls; announce?: string } = {}): Promise<TestSentinel> {
    const { tls, announce } = options;
    const master = await TestRedis.start({ tls });
    const replica = await TestRedis.start({ tls });
    await redisCli(replica.port, 'REPLICAOF', '127.0.0.1', String(tls ? master.tlsPort : master.port));
    await until(async () => /master_link_status:up/.test(await redisCli(replica.port, 'INFO', 'replication')), 'the replica in sync');
    const dir = mkdtempSync(join(tmpdir(), 'sb-sentinel-'));
    const port = await freePort();
    const tlsPort = tls ? await freePort() : undefined;
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(conf, [
      `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`,
      ...(tls ? [`tls-port ${tlsPort}`, `tls-cert-file ${tls.cert}`, `tls-key-file ${tls.key}`, `tls-ca-cert-file ${tls.ca}`, 'tls-replication yes', `tls-auth-clients ${tls.authClients ? 'yes' : 'no'}`] : []),
      ...(announce === undefined ? [] : ['sentinel resolve-hostnames yes', 'sentinel announce-hostnames yes']),
      `sentinel monitor ${TestSentinel.MASTER} ${announce ?? '127.0.0.1'} ${tls ? master.tlsPort : master.port} 1`,
      `sentinel down-after-milliseconds ${TestSentinel.MASTER} 500`,
      `sentinel failover-timeout ${TestSentinel.MASTER} 3000`,
      `sentinel parallel-syncs ${TestSentinel.MASTER} 1`,
      ...(options.sentinelPassword === undefined ? [] : [`requirepass ${options.sentinelPassword}`]),
    ].join('\n') + '\n');
    const child = await spawnRedis([conf, '--sentinel'], '+monitor master');
    const s = new TestSentinel(master, replica, port, child, dir, options.sentinelPassword, tlsPort, announce);
    child.stdout!.on('data', (d: Buffer) => (s.output = (s.output + d.toString()).slice(-20_000)));
    // Sentinel's periods made shorter (Redis 7's SENTINEL DEBUG), so it notices within a second what it would in 10 s
    // (INFO), and a loaded machine's late timer does not put it in TILT (no failover for 30 s). Not much shorter: a
    // replica whose last INFO is older than 3 periods, or last PING answer older than 5, is not one it promotes.
    await s.sentinel('DEBUG', 'info-period', '1000', 'ping-period', '500', 'min-link-reconnect-period', '500',
      'slave-reconf-timeout', '3000', 'election-timeout', '1000', 'tilt-trigger', '10000', 'tilt-period', '1000');
    // Sentinel learns of the replica from the master's INFO: until then it has nobody to promote.
    await until(async () => /\bslave\b/.test(await s.sentinel('REPLICAS', TestSentinel.MASTER).catch(() => '')), 'Sentinel knows the replica', 15_000);
    return s;
  }

  /** The port of the master Sentinel names now. */
  async masterPort(): Promise<number> {
    const reply = await this.sentinel('GET-MASTER-ADDR-BY-NAME', TestSentinel.MASTER);
    return Number(reply.split('\n')[1]);
  }

  /**
   * Asks Sentinel to fail over (SENTINEL FAILOVER: the master demoted alive) and waits until it names `port` as the
   * master; asked again whenever Sentinel is not failing over (a replica not yet good to promote aborts it).
   */
  async failoverTo(port: number): Promise<void> {
    await until(async () => {
      if ((await this.masterPort()) === port) return true;
      const flags = (await this.sentinel('MASTER', TestSentinel.MASTER)).split('\n');
      if (!flags[flags.indexOf('flags') + 1]!.includes('failover_in_progress')) await this.sentinel('FAILOVER', TestSentinel.MASTER);
      return false;
    }, `Sentinel names 127.0.0.1:${port} the master`, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}; Sentinel logged:\n${this.output.slice(-3000)}`);
    });
  }

  /** Kills the master (SIGKILL) and waits until Sentinel names the replica as the master. */
  async failover(): Promise<void> {
    await this.master.stop();
    const promoted = this.tlsPort === undefined ? this.replica.port : this.replica.tlsPort;
    await until(async () => (await this.masterPort()) === promoted, 'Sentinel promoted the replica', 20_000);
  }

  async stop(): Promise<void> {
    await killRedis(this.child);
    await Promise.all([this.master.stop(), this.replica.stop()]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * One command to 127.0.0.1:`port`, its reply as `redis-cli` prints it raw, trimmed (an error reply's text too); rejects
 * when Redis cannot be reached or does not reply within 10 s. In this process (resp.ts), not a redis-cli spawned:
 * 617 and 677 in two runs of the cluster and MQTT files (12 left: the clusters' `--cluster create`), each a fork of
 * the vitest worker and an exec.
 */
export function redisCli(port: number, ...args: string[]): Promise<string> {
  return respCommand(port, args);
}

/**
 * A Redis Cluster of the test's own: 3 masters, no replicas, on free ports (each port + 10000, the cluster bus port,
 * free too), in a temporary directory, created with `redis-cli --cluster create`; ready once every node says
 * `cluster_state:ok`. `cluster-require-full-coverage no`: with a master killed, the other shards keep serving.
 */
export class TestRedisCluster {
  private readonly children = new Map<number, ChildProcess>();

  private constructor(
    readonly ports: number[],
    private readonly dir: string,
    private readonly replicas = 0,
    /** With `tls`: each node's TLS port (ports[i]'s), which the cluster's bus and its TLS clients use. */
    readonly tlsPorts: number[] = [],
    private readonly tls?: TestTls,
    /** The host name every node announces (`cluster-announce-hostname`, `cluster-preferred-endpoint-type hostname`). */
    private readonly announce?: string,
  ) {}

  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`, the form `--redis` takes. */
  get url(): string {
    return `redis+cluster://${this.ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
  }

  /** `rediss+cluster://127.0.0.1:t1,…`: the nodes' TLS ports (start with `tls`); a TLS client is told of TLS ports only. */
  get tlsUrl(): string {
    if (this.tls === undefined) throw new Error('this TestRedisCluster was started without TLS');
    return `rediss+cluster://${this.tlsPorts.map((p) => `${this.announce ?? '127.0.0.1'}:${p}`).join(',')}`;
  }

  /**
   * `replicas` per master: then a master that dies fails over to its replica after about a second. `tls`: each node
   * also has a TLS port, its cluster bus and replication go over TLS (`tls-cluster yes`), and its plain port stays
   * open for the test to look on (a plain client is told of plain ports, a TLS client of TLS ports). `announce`: the
   * nodes are announced by that host name instead of their address (`CLUSTER SLOTS` names it).
   */
  static async start(masters = 3, replicas = 0, tls?: TestTls, announce?: string): Promise<TestRedisCluster> {
    let lastError: unknown;
    // Ports are checked free, but another process may take one before redis-server binds it: then try new ones.
    for (let attempt = 1; attempt <= 3; attempt++) {
      const n = masters * (1 + replicas);
      const dir = mkdtempSync(join(tmpdir(), 'sb-redis-cluster-'));
      // The bus port is the cluster's port + 10000: the TLS port's with `tls-cluster yes`.
      const c = tls
        ? new TestRedisCluster(await Promise.all(Array.from({ length: n }, () => freePort())), dir, replicas, await freeClusterPorts(n), tls, announce)
        : new TestRedisCluster(await freeClusterPorts(n), dir, replicas);
      try {
        await c.create();
        return c;
      } catch (err) {
        lastError = err;
        await c.stop();
      }
    }
    throw new Error(`could not start a Redis Cluster: ${(lastError as Error).message}`);
  }

  /** Starts every node (their nodes-<port>.conf, once written, keeps the cluster's layout across restarts). */
  private async spawnAll(): Promise<void> {
    await Promise.all(
      this.ports.map(async (port, i) => {
        const tls = this.tls === undefined ? [] : [
          '--tls-port', String(this.tlsPorts[i]), '--tls-cluster', 'yes', '--tls-replication', 'yes', '--tls-cert-file', this.tls.cert,
          '--tls-key-file', this.tls.key, '--tls-ca-cert-file', this.tls.ca, '--tls-auth-clients', this.tls.authClients ? 'yes' : 'no',
          // the cluster bus's own connections present the server's certificate as a client's
          '--tls-client-cert-file', this.tls.cert, '--tls-client-key-file', this.tls.key,
          ...(this.announce === undefined ? [] : ['--cluster-announce-hostname', this.announce, '--cluster-preferred-endpoint-type', 'hostname']),
        ];
        const child = await spawnRedis([
          '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no',
          '--dir', this.dir, '--cluster-enabled', 'yes', '--cluster-config-file', join(this.dir, `nodes-${port}.conf`),
          '--cluster-require-full-coverage', 'no', ...(this.replicas > 0 ? ['--cluster-node-timeout', '1000'] : []), ...tls,
        ]);
        this.children.set(port, child);
      }),
    );
  }

  private async create(): Promise<void> {
    await this.spawnAll();
    // Over TLS, created through the TLS ports: the nodes meet on their bus ports, the TLS ports' + 10000.
    const tls = this.tls === undefined ? [] : ['--tls', '--cacert', this.tls.ca, '--cert', this.tls.clientCert, '--key', this.tls.clientKey];
    const ports = this.tls === undefined ? this.ports : this.tlsPorts;
    await execFileP(REDIS_CLI, [...tls, '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(this.replicas), '--cluster-yes'], { timeout: 30_000 });
    await this.whenOk();
  }

  /** Every node killed (SIGKILL) and started again: the same cluster, empty (no persistence). */
  async restart(): Promise<void> {
    await Promise.all([...this.children.values()].map(killRedis));
    await this.spawnAll();
    await this.whenOk();
  }

  /** Until every node says cluster_state:ok, with every slot assigned and every node known. */
  private async whenOk(): Promise<void> {
    const until = Date.now() + 30_000;
    for (;;) {
      const infos = await Promise.all(this.ports.map((p) => redisCli(p, 'cluster', 'info').catch(() => '')));
      if (infos.every((i) => /cluster_state:ok/.test(i) && /cluster_slots_assigned:16384/.test(i) && new RegExp(`cluster_known_nodes:${this.ports.length}\\b`).test(i))) return;
      if (Date.now() > until) throw new Error(`cluster not ok within 30 s: ${infos.join(' | ').replace(/\s+/g, ' ').slice(0, 500)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The slot of `key` (CLUSTER KEYSLOT). */
  async keyslot(key: string): Promise<number> {
    return Number(await redisCli(this.ports[0]!, 'cluster', 'keyslot', key));
  }

  /** The port of the master serving `slot`, from CLUSTER SLOTS as one node sees it. */
  async ownerOf(slot: number): Promise<number> {
    const lines = (await redisCli(this.ports[0]!, 'cluster', 'nodes')).split('\n');
    for (const line of lines) {
      // <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges…>
      const parts = line.split(' ');
      if (!parts[2]?.split(',').includes('master')) continue;
      for (const r of parts.slice(8)) {
        const [from, to = from] = r.split('-').map(Number) as [number, number?];
        if (slot >= from && slot <= to!) return Number(parts[1]!.split('@')[0]!.split(':').at(-1));
      }
    }
    throw new Error(`no master serves slot ${slot}`);
  }

  /** The replica of the master on `port`, once it has everything the master has (replication offsets equal). */
  async syncedReplicaOf(port: number): Promise<number> {
    const until = Date.now() + 15_000;
    for (;;) {
      const lines = (await redisCli(this.ports[0]!, 'cluster', 'nodes')).split('\n');
      const master = lines.find((l) => l.split(' ')[1]?.split('@')[0]?.endsWith(`:${port}`))?.split(' ')[0];
      const replica = lines.find((l) => l.split(' ')[3] === master);
      const replicaPort = replica ? Number(replica.split(' ')[1]!.split('@')[0]!.split(':').at(-1)) : undefined;
      if (replicaPort) {
        const offset = (info: string) => Number(/master_repl_offset:(\d+)/.exec(info)?.[1] ?? -1);
        const [m, r] = await Promise.all([redisCli(port, 'info', 'replication'), redisCli(replicaPort, 'info', 'replication')]);
        if (/master_link_status:up/.test(r) && offset(r) === offset(m)) return replicaPort;
      }
      if (Date.now() > until) throw new Error(`no replica of ${port} in sync within 15 s`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  /** Kills one master (SIGKILL) and waits until it is gone. */
  async kill(port: number): Promise<void> {
    await killRedis(this.children.get(port));
  }

  /** Kills every node and removes the directory. */
  async stop(): Promise<void> {
    await Promise.all([...this.children.values()].map(killRedis));
    this.children.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `n` ports free on 127.0.0.1 whose cluster bus ports (+10000) are free too (see ownPort). */
export async function freeClusterPorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) ports.push(await freePort(true));
  return ports;
}

/**
 * The node heartbeat of test nodes (--node-ttl-ms / --node-tick-ms): short, so a test that waits for a dead node to
 * be noticed waits ~2 s, not the 5-7 s of the defaults. The heartbeat thread keeps a busy test process's nodes alive.
 */
export const FAST_NODE = { nodeTtlMs: 2000, nodeTickMs: 250 } as const;
export const FAST_NODE_FLAGS = ['--node-ttl-ms', String(FAST_NODE.nodeTtlMs), '--node-tick-ms', String(FAST_NODE.nodeTickMs)];

/** Long enough for a node whose heartbeat stopped to be reaped (its TTL and two of the survivors' ticks). */
export const REAP_WINDOW_MS = FAST_NODE.nodeTtlMs + 2 * FAST_NODE.nodeTickMs;
/**
 * How long a test waits for a dead node's reaping to reach it before it fails: a guard against a hang, not a target
 * (10× REAP_WINDOW_MS), so a loaded machine's slow reaper is waited for while a reaper that never comes is reported.
 */
export const REAP_GUARD_MS = 10 * REAP_WINDOW_MS;

/** A broker of the cluster on `redis`, in this process, on free ports. */
export async function startNode(redis: TestRedis | TestRedisCluster, overrides: Partial<Config> = {}): Promise<TestBroker> {
  const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', redisUrl: redis.url, ...FAST_NODE, ...overrides };
  // MQTT listens only when asked for (`mqttPort: 0` picks a free port, read back as broker.mqttPort).
  const broker = await startBroker(config, { log: createLogger(config.logLevel, false), tcpPort: 0, mqttPort: overrides.mqttPort });
  return Object.assign(broker, { url: `ws://127.0.0.1:${broker.port}/ws`, httpUrl: `http://127.0.0.1:${broker.port}` });
}

/**
 * POST /api/publish of `message` to the broker listening on 127.0.0.1:`port`, again while it answers 503 (a node that
 * does not have its Redis yet refuses what it surely did not do); its last answer.
 */
export async function publishWhenUp(port: number, message: { topic: string; data: unknown }): Promise<Response> {
  const publish = () => fetch(`http://127.0.0.1:${port}/api/publish`, { method: 'POST', body: JSON.stringify(message) });
  let res = await publish();
  for (let i = 0; res.status === 503 && i < 100; i++) {
    await new Promise((r) => setTimeout(r, 50));
    res = await publish();
  }
  return res;
}

/** The CLIENT LIST lines of a Redis (asked on `port`) that are broker nodes' connections (named sb-<node>…). */
export async function nodeClientLines(port: number): Promise<string[]> {
  return (await redisCli(port, 'CLIENT', 'LIST')).split('\n').filter((l) => / name=sb-/.test(l));
}

/** A metric's value on a node's `/metrics` (a sample without labels). */
export async function metric(node: { httpUrl: string }, name: string): Promise<number> {
  const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  if (!line) throw new Error(`no ${name} in /metrics`);
  return Number(line.split(' ')[1]);
}

/** The reaper's finished passes over the node set, and the dead nodes it reaped, on a node's `/metrics` (reaper.ts). */
export const REAPER_PASSES = 'switchboard_cluster_reaper_passes_total';
export const NODES_REAPED = 'switchboard_cluster_nodes_reaped_total';

/**
 * Resolves once each of `nodes` has finished `passes` more reaper passes than when asked. A node's passes never
 * overlap, so of two passes finished after the call the second began after it: 2 is one whole pass of each node's
 * reaper since what the test did before (every heartbeat checked as it stood then), 3 two. How a test shows that a
 * node was *not* reaped: by waiting until every other node's reaper has looked, not for a time.
 */
export async function reaperPasses(nodes: { httpUrl: string }[], passes: number, ms = 15_000): Promise<void> {
  const from = await Promise.all(nodes.map((n) => metric(n, REAPER_PASSES)));
  const done = async () => (await Promise.all(nodes.map((n) => metric(n, REAPER_PASSES)))).every((v, i) => v >= from[i]! + passes);
  await until(done, `${passes} more reaper passes of ${nodes.length} node(s)`, ms);
}

/** A cluster node's id, as its `/healthz` says it. */
export async function nodeIdOf(node: { httpUrl: string }): Promise<string> {
  return ((await (await fetch(`${node.httpUrl}/healthz`)).json()) as { node: string }).node;
}

/** The port of the master of `rc` that node `nodeId`'s classic subscriber (`sb-<node>-sub`) is connected to, as the masters' CLIENT LIST say. */
export async function subscriberPortOf(rc: TestRedisCluster, nodeId: string): Promise<number> {
  for (const port of rc.ports) {
    if ((await redisCli(port, 'client', 'list').catch(() => '')).includes(` name=sb-${nodeId}-sub `)) return port;
  }
  throw new Error(`no master lists node ${nodeId}'s subscriber`);
}

/** The node's `/healthz` status: running, or degraded while Redis is unreachable. */
export async function health(node: { httpUrl: string }): Promise<string> {
  return ((await (await fetch(`${node.httpUrl}/healthz`)).json()) as { status: string }).status;
}

/**
 * A TCP proxy to Redis that can be cut (every connection dropped, new ones refused), restored, or pointed elsewhere,
 * and can hold back one command (a connection's bytes from the one containing a given text on, in order) until
 * released: a test delays one Redis step of a node without a seam in the product.
 */
export class RedisProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** The last bytes sent towards Redis (a test waits until a command it caused has gone through). */
  private upstream = '';
  /** Bytes containing this are held back (with everything after them on their connection) until release(). */
  private holdText: string | undefined;
  /** hold()'s `fromCommand`: the commands before the one containing the text in the same chunk go through. */
  private holdFromCommand = false;
  /** Each held connection's sending of what it holds. */
  private readonly holding = new Set<() => void>();
  /** What each held connection holds back, in order. */
  private readonly heldChunks = new Set<Buffer[]>();
  /** Told (synchronously) when bytes containing their text are sent towards Redis. */
  private readonly watchers = new Set<{ text: string; seen: () => void }>();
  /** Each connection: what it sent (its last 64 KiB), and the replies held back from it. */
  private readonly links = new Set<{ down: Socket; sent: string; holdReplies: boolean; replies: Buffer[] }>();
  /** The connection that next sends bytes containing this has its replies held back (holdRepliesOf). */
  private replyHoldText: string | undefined;
  /** Every connection's replies are held back (holdReplies). */
  private allRepliesHeld = false;
  private constructor(
    readonly port: number,
    private target: number,
  ) {}

  static async start(target: number): Promise<RedisProxy> {
    const p = new RedisProxy(await freePort(), target);
    await p.restore();
    return p;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Accepts again, forwarding to `target` (another Redis: a failover) or to the one before. */
  restore(target = this.target): Promise<void> {
    this.target = target;
    const server = createServer((down) => {
      const up = connect(this.target, '127.0.0.1');
      for (const s of [down, up]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.sockets.delete(s));
      }
      const link = { down, sent: '', holdReplies: this.allRepliesHeld, replies: [] as Buffer[] };
      this.links.add(link);
      down.on('close', () => this.links.delete(link));
      let held: Buffer[] | undefined;
      const send = (chunk: Buffer) => {
        const text = chunk.toString('latin1');
        this.upstream = (this.upstream + text).slice(-65_536);
        link.sent = (link.sent + text).slice(-65_536);
        if (this.replyHoldText !== undefined && text.includes(this.replyHoldText)) link.holdReplies = true;
        const wrote = up.write(chunk);
        for (const w of this.watchers) if (text.includes(w.text)) w.seen();
        if (wrote) return;
        down.pause();
        up.once('drain', () => down.resume());
      };
      down.on('data', (chunk: Buffer) => {
        const text = chunk.toString('latin1');
        if (!held && this.holdText !== undefined && text.includes(this.holdText)) {
          if (this.holdFromCommand) {
            // Forward the commands before the one holding the text (a RESP array starts with `*<n>\r\n$`).
            const at = text.indexOf(this.holdText);
            let start = 0;
            for (let i = at; i > 1; i--) {
              if (text[i] === '*' && text[i - 1] === '\n' && text[i - 2] === '\r' && /^\*\d+\r\n\$/.test(text.slice(i, i + 16))) {
                start = i;
                break;
              }
            }
            if (start > 0) {
              send(chunk.subarray(0, start));
              chunk = chunk.subarray(start);
            }
          }
          held = [];
          const chunks = held;
          this.heldChunks.add(chunks);
          const flush = () => {
            this.heldChunks.delete(chunks);
            for (const c of held!.splice(0)) send(c);
            held = undefined;
          };
          this.holding.add(flush);
        }
        if (held) held.push(chunk);
        else send(chunk);
      });
      down.on('end', () => up.end());
      up.on('close', () => down.destroy());
      up.on('data', (chunk: Buffer) => (link.holdReplies ? link.replies.push(chunk) : down.write(chunk)));
      up.on('end', () => down.end());
      down.on('close', () => up.destroy());
      up.on('close', () => down.destroy());
    });
    this.server = server;
    return new Promise((resolve) => server.listen(this.port, '127.0.0.1', () => resolve()));
  }

  /** Holds back the next bytes towards Redis containing `text` (and what follows them on their connection). */
  hold(text: string, { fromCommand = false } = {}): void {
    this.holdText = text;
    this.holdFromCommand = fromCommand;
  }

  /** Whether bytes containing the held text arrived and are held back. */
  get held(): boolean {
    return this.holding.size > 0;
  }

  /** Whether the bytes held back contain `text` (a command a node wrote behind the held one, such as an UNSUBSCRIBE). */
  holds(text: string): boolean {
    return [...this.heldChunks].some((chunks) => chunks.some((c) => c.toString('latin1').includes(text)));
  }

  /** Sends what is held back, in order, and holds nothing more. */
  release(): void {
    this.holdText = undefined;
    for (const flush of this.holding) flush();
    this.holding.clear();
  }

  /**
   * Calls `then` as soon as bytes containing `text` went through towards Redis, within the same tick (before anything
   * else a node sends meanwhile): a test orders one node's command right behind another's.
   */
  whenForwarded(text: string, then: () => void): void {
    const w = {
      text,
      seen: () => {
        this.watchers.delete(w);
        then();
      },
    };
    this.watchers.add(w);
  }

  /** Holds back the replies to every connection (the way back is slow) until releaseReplies(). */
  holdReplies(): void {
    this.allRepliesHeld = true;
    for (const l of this.links) l.holdReplies = true;
  }

  /** Holds back the replies to the connection that next sends bytes containing `text` (its later ones too). */
  holdRepliesOf(text: string): void {
    this.replyHoldText = text;
  }

  /** Whether some connection's replies are held back (and at least one reply waits). */
  get holdingReplies(): boolean {
    return [...this.links].some((l) => l.holdReplies && l.replies.length > 0);
  }

  /** Whether the replies held back from some connection contain `text` (a message on its way to a held subscriber). */
  holdsReply(text: string): boolean {
    return [...this.links].some((l) => Buffer.concat(l.replies).toString('latin1').includes(text));
  }

  /** Sends the replies held back, in order, and holds none more. */
  releaseReplies(): void {
    this.allRepliesHeld = false;
    this.replyHoldText = undefined;
    for (const l of this.links) {
      l.holdReplies = false;
      for (const c of l.replies.splice(0)) l.down.write(c);
    }
  }

  /** Whether a connection that sent bytes matching `sent` is open (a node's subscriber: /subscribe/i). */
  hasConnection(sent: RegExp): boolean {
    return [...this.links].some((l) => sent.test(l.sent));
  }

  /** Breaks the connections that sent bytes matching `sent`. */
  kill(sent: RegExp): void {
    for (const l of this.links) if (sent.test(l.sent)) l.down.destroy();
  }

  /** Whether `text` went through towards Redis (in the last 64 KiB). */
  forwarded(text: string): boolean {
    return this.upstream.includes(text);
  }

  /**
   * Accepts no new connection until restore(); those open stay up (a Redis that dropped one of a node's connections
   * and cannot be reached again by it).
   */
  refuseNew(): void {
    this.server?.close();
    this.server = undefined;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    // Cut already (a test that failed between its cut and its restore): nothing to close, nothing to wait for.
    const closed = server ? new Promise((r) => server.close(r)) : Promise.resolve();
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

/** A Redis, a RedisProxy in front of it, node `a` behind the proxy and node `b` straight on Redis. */
export interface ProxiedNodes {
  redis: TestRedis;
  proxy: RedisProxy;
  a: TestBroker;
  b: TestBroker;
}

/** Two nodes with MQTT on (`a`, `b`) on a Redis of their own, set up before the describe's tests and torn down after. */
export interface MqttNodes {
  redis: TestRedis;
  a: TestBroker;
  b: TestBroker;
}

export function mqttNodes(): MqttNodes {
  const n = {} as MqttNodes;
  beforeAll(async () => {
    n.redis = await TestRedis.start();
    n.a = await startNode(n.redis, { mqttPort: 0 });
    n.b = await startNode(n.redis, { mqttPort: 0 });
  });
  afterAll(async () => {
    await n.a?.close();
    await n.b?.close();
    await n.redis?.stop();
  });
  return n;
}

/**
 * Sets up a Redis, a proxy in front of it, node `a` (with `behind`) through the proxy and node `b` (with `direct`)
 * straight on Redis, before the file's (or describe's) tests, and tears them down after; filled in once they run.
 * `between` runs after `a` started and before `b` does.
 */
export function proxiedNodes(behind: Partial<Config> = {}, direct: Partial<Config> = {}, between?: (n: ProxiedNodes) => Promise<void>): ProxiedNodes {
  const n = {} as ProxiedNodes;
  beforeAll(async () => {
    n.redis = await TestRedis.start();
    n.proxy = await RedisProxy.start(n.redis.port);
    n.a = await startNode(n.redis, { redisUrl: n.proxy.url, ...behind });
    await between?.(n);
    n.b = await startNode(n.redis, direct);
  });
  afterAll(async () => {
    await n.a?.close();
    await n.b?.close();
    await n.proxy?.cut();
    await n.redis?.stop();
  });
  return n;
}

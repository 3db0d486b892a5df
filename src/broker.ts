// Broker: assembles one process — supervisor actor, HTTP routes, WebSocket transport — and shuts it down gracefully.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { createActor, toPromise } from 'xstate';
import type { Logger } from 'pino';
import { VERSION, type Config } from './config.js';
import { MemoryEngine, type MemoryEngineOptions } from './engine/memory.js';
import type { Link } from './actors/link.js';
import { supervisorMachine, type SupervisorActor } from './actors/supervisor.machine.js';
import type { BrokerCore } from './actors/connection.js';
import type { Engine } from './engine/engine.js';
import { WsTransport } from './transports/ws/transport.js';
import { refuseUpgrade } from './transports/upgrade.js';
import { OriginPolicy } from './http/origin.js';
import { LINES_PATH, TcpTransport } from './transports/tcp/transport.js';
import { SseTransport } from './transports/sse/transport.js';
import { registerSse } from './http/sse.js';
import { registerApi } from './http/api.js';
import { registerPages } from './http/pages.js';
import { HttpError, Router, sendJson } from './transports/router.js';
import { ClientFaults, createLogger } from './log.js';
import { Admission } from './actors/admission.js';
import type { StatelyInspector } from './inspect/stately.js';
import { ActorsPage } from './inspect/page.js';
import { adminCheck } from './inspect/access.js';
import { BrokerMetrics } from './http/metrics.js';
import { ActorTree } from './actors/tree.js';
import { loggablePath, parseTarget } from './protocol/target.js';
import { HttpSockets } from './http/sockets.js';
import { openFilesWarning, readOpenFilesSoftLimit } from './open-files.js';
import { LoopStalls } from './engine/stalls.js';
import { Hooks } from './hooks/hooks.js';

export { VERSION };

export interface Broker extends BrokerCore {
  /** The engine (in-memory or Redis) by its interface; tests read its state through `hub.inspect`. */
  hub: Engine<Link>;
  log: Logger;
  http: Server;
  router: Router;
  /** Upgrade handlers by exact path, tried before the WebSocket protocol endpoint (/ws, /ws/<topic>). */
  upgrades: Map<string, UpgradeHandler>;
  /** Actual ports (useful when configured as 0). */
  port: number;
  /** Actual TCP line-protocol port; 0 when TCP is disabled. */
  tcpPort: number;
  /** Actual MQTT port; 0 when MQTT is disabled. */
  mqttPort: number;
  /** Shuts down gracefully: stop accepting, flush mailboxes, close every connection with 1001. */
  close(): Promise<void>;
  /** The stall clock (its timer runs at the fine period while connections hold it; tests read `holders`, `timerMs`). */
  stalls: LoopStalls;
  /** Watching the actors: the /inspect page, /metrics, and the Stately Inspector link when --inspect is on. */
  observability: { page: ActorsPage; metrics: BrokerMetrics; stately: StatelyInspector | undefined };
}

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface BrokerOptions {
  log?: Logger;
  /** Overrides config.tcpPort with a port to listen on; here 0 picks a free port (tests), where the setting's 0 disables TCP. */
  tcpPort?: number;
  /** The same for config.mqttPort. */
  mqttPort?: number;
  /** Builds the hub instead of `new MemoryEngine(options)`: tests plant a broken MemoryEngine subclass to prove the conformance checker notices. */
  hubFactory?: (options: MemoryEngineOptions) => Engine<Link>;
}

/** The addresses a person opens for a broker listening on `host`:`port` (any-interface hosts become localhost). */
export function pageUrls(host: string, port: number): { chat: string; inspect: string; metrics: string; websocket: string } {
  const name = host === '0.0.0.0' || host === '::' || host === '' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  const base = `http://${name}:${port}`;
  return { chat: `${base}/`, inspect: `${base}/inspect`, metrics: `${base}/metrics`, websocket: `ws://${name}:${port}/ws` };
}

export async function startBroker(config: Config, options: BrokerOptions = {}): Promise<Broker> {
  // The Stately Inspector's client library only with --inspect: loading it was a sixth of a broker process's start-up.
  const inspection = config.inspect === undefined ? undefined : await import('./inspect/stately.js');
  const log = options.log ?? createLogger(config.logLevel);
  const cluster = config.redisUrl;
  // The Redis engine's modules only on a cluster: ioredis and what it brings were a sixth of a broker process's start-up.
  const redis = cluster === undefined ? undefined : await clusterModules();
  const engineOf = (o: MemoryEngineOptions): Engine<Link> =>
    redis === undefined ? new MemoryEngine<Link>(o) : new redis.RedisEngine<Link>({
          ...o,
          url: cluster!,
          maxInflight: config.redisMaxInflight,
          log,
          interestLingerMs: config.interestLingerMs,
          batchIntervalMs: config.redisBatchMs,
          historyTtlMs: config.historyTtlMs,
          commandTimeoutMs: config.redisTimeoutMs,
          nodeTtlMs: config.nodeTtlMs,
          tickMs: config.nodeTickMs,
          nodeHangMs: config.nodeHangMs,
        });
  // One stall clock per broker: rate buckets count frames when read, and credit what queued while the loop was blocked.
  const stalls = new LoopStalls();
  const hub = (options.hubFactory ?? engineOf)({
    serverName: config.serverName,
    version: VERSION,
    heartbeatMs: config.heartbeatMs,
    idleMs: config.idleMs,
    historySize: config.historySize,
    historyBytes: config.historyBytes,
    historyTopicBytes: config.historyTopicBytes,
    maxTopics: config.maxTopics,
    topicNamesBytes: config.topicNamesBytes,
    maxSubscriptions: config.maxSubscriptions,
    idleClose: config.idleClose,
    replayMaxMessages: config.mailboxSize,
    replayMaxBytes: config.replayBytes,
    renameRate: config.renameRate,
    room: config.room,
    roomAnnounceMax: config.roomAnnounceMax,
    tcpNamedByAddress: config.roomAddresses === 'show',
    stalls,
  });
  // The cluster engine reaches Redis before anything listens: an unreachable Redis fails the start with its URL.
  const engine: Engine<Link> = hub;
  await engine.start();
  // Read before anything starts, so a bad --auth-jwks file fails the start with a clear message. jose only with
  // authentication on (auth/verifier.ts).
  const authOn = config.authSecret !== undefined || config.authJwks !== undefined;
  const tokens = authOn ? (await import('./auth/verifier.js')).TokenVerifier.fromSettings(config) : null;
  const origins = new OriginPolicy(config); // a bad --public-host fails the start too
  // On a cluster, requests only another node can serve (an SSE POST for its stream, an MQTT session it holds).
  const calls = redis && hub instanceof redis.RedisEngine ? new redis.NodeCalls(cluster!, hub.redis.cmd, hub.node, log) : undefined;
  await calls?.start().catch(async (err: unknown) => {
    calls.close();
    await engine.close();
    throw err;
  });
  stalls.start(); // nothing above left running if it threw
  const supervisor: SupervisorActor = createActor(supervisorMachine, { input: { hub, log }, id: 'supervisor' });
  const actors = new ActorTree(supervisor); // connection actors under the supervisor, in systems shared by groups of 64
  supervisor.start();
  const startedAt = Date.now();
  // Inspection off = no observer at all; on = one observer on the actor tree, registered only while the bridge is connected.
  const stately = inspection && new inspection.StatelyInspector({ url: config.inspect!, log, actors });
  const faults = new ClientFaults(log);
  const hooks = Hooks.fromConfig(config, log);
  hooks?.events?.countWith(engine);
  const core: BrokerCore = { config, hub, supervisor, actors, admission: new Admission(config, log), tokens, log, faults, stalls, hooks, events: hooks?.events };

  const router = new Router();
  router.on('GET', '/healthz', (_req, res) => {
    // A cluster node that lost its Redis still serves its connections, but says so; it also says which node it is
    // (the id its clients' records, its Redis connections' names and the other nodes know it by).
    const status = engine.health() === 'degraded' ? 'degraded' : supervisor.getSnapshot().value;
    sendJson(res, 200, { status, connections: hub.sessionCount, uptimeS: Math.round(process.uptime()), ...(calls && { node: calls.node }) });
  });

  registerApi(router, core, log, calls);
  registerPages(router, config);
  // (The MQTT transport is made below; a scrape comes only once the broker listens.)
  const metrics = new BrokerMetrics({ hub, loopDelays: stalls.delays, inspection: stately && { sampler: stately.sampler, dropped: () => stately.dropped }, mqttWillsDelayed: () => mqtt?.wills.waiting ?? 0 });
  router.on('GET', '/metrics', (req, res) => metrics.serve(req, res));
  const actorsPage = new ActorsPage({ actors, log, authorize: adminCheck(config, tokens), startedAt });

  const ws = new WsTransport(core, log);
  const sse = new SseTransport(core, origins, log, calls);
  registerSse(router, sse, config.maxPayload);
  // While the API is open (no --api-key, no auth), the API, metrics and the actors page answer only requests addressed
  // to this broker (DNS rebinding: a page under a rebound name would otherwise read and publish as its own origin).
  // With a key or tokens a rebound page has no credentials, and servers may reach the broker by any name.
  const apiOpen = config.apiKey === undefined && !tokens;
  router.guard((req, pathname) => {
    // A page on another origin may POST to the API without a preflight (a "simple" text/plain request): the Origin
    // rules of the WebSocket handshake apply to /api/* too. Servers and curl send no Origin and are not concerned.
    if (pathname.startsWith('/api/') && !origins.allows(req.headers.origin)) {
      faults.note('info', { origin: String(req.headers.origin).slice(0, 200), path: pathname, flag: '--allowed-origins' }, 'api request refused: origin not allowed');
      return new HttpError(403, `origin '${String(req.headers.origin).slice(0, 200)}' is not allowed`, 'forbidden');
    }
    if (!apiOpen || !/^\/(api\/|inspect|metrics|sse)/.test(pathname) || origins.servesHost(req.headers.host)) return undefined;
    faults.note('info', { host: String(req.headers.host).slice(0, 200), path: pathname, flag: '--public-host' }, 'request refused: not addressed to this broker (add the name with --public-host)');
    return new HttpError(421, `this broker is not '${String(req.headers.host).slice(0, 100)}'; add it with --public-host`, 'misdirected');
  });
  const http = createServer(httpTimeouts(config.httpTimeoutMs), (req, res) => {
    if (sockets.isRefused(req.socket)) return; // already answered 503/429 on accept and being cut
    router.handle(req, res).catch((err: unknown) => {
      log.error({ err, method: req.method, path: loggablePath(req.url) }, 'http handler failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal', message: 'internal error' });
      else res.destroy();
    });
  });
  // Every accepted socket holds a connection slot until it closes; errors and timeouts are answered and cut.
  const sockets = new HttpSockets(core.admission!, log);
  sockets.attach(http);
  const upgrades = new Map<string, UpgradeHandler>();
  actorsPage.mount(router, upgrades);
  // A plain GET /ws answers what an upgrade would get (a browser cannot read a refused upgrade's status).
  router.on('GET', '/ws', async (req, res) => {
    if (!origins.allows(req.headers.origin)) return sendJson(res, 403, { error: `origin '${String(req.headers.origin).slice(0, 200)}' is not allowed` });
    const verdict = await ws.diagnose(req);
    sendJson(res, verdict.status, verdict.body);
  });
  http.on('upgrade', (req, socket, head) => {
    if (sockets.isRefused(socket)) return;
    socket.on('error', (err) => log.debug({ err: err.message }, 'upgrade socket error'));
    // Every WebSocket endpoint (the protocol, the actors page) answers only to allowed browser origins.
    const origin = req.headers.origin;
    if (!origins.allows(origin)) {
      const value = config.allowedOrigins ?? "this broker's own addresses and --public-host";
      faults.note(
        'info',
        { origin, addr: req.socket.remoteAddress, limit: 'allowed origins', value, flag: '--allowed-origins' },
        `upgrade refused: origin not allowed, allowed: ${value} (change with --allowed-origins or --public-host)`,
      );
      return refuseUpgrade(socket, 403, 'Forbidden', `origin '${String(origin).slice(0, 200)}' is not allowed`);
    }
    const target = parseTarget(req.url);
    if (!target) return refuseUpgrade(socket, 400, 'Bad Request', 'the request target must be a path: /ws[/<topic>][?<query>]');
    const handler = upgrades.get(target.pathname);
    if (handler) handler(req, socket, head);
    else ws.upgrade(req, socket, head);
  });
  const tcpListenPort = options.tcpPort ?? (config.tcpPort === 0 ? undefined : config.tcpPort);
  const tcp = tcpListenPort === undefined ? undefined : new TcpTransport(core, log);
  const mqttListenPort = options.mqttPort ?? (config.mqttPort === 0 ? undefined : config.mqttPort);
  // On a cluster, MQTT sessions and retained messages are kept in the engine's Redis, shared by every node.
  const mqttStores = redis && hub instanceof redis.RedisEngine ? redis.redisStores(hub.redis.cmd, hub.redis.scripts, config, log) : undefined;
  // A node this one reaped: its MQTT connections' session holds end once it had --node-hang-ms to come back (whether
  // or not this node serves MQTT: the holds are the cluster's).
  if (redis && hub instanceof redis.RedisEngine && mqttStores) hub.redis.onReaped((node) => mqttStores.sessions.forgetLater(node, config.nodeHangMs));
  // mqtt-packet and the MQTT transport only with MQTT on.
  const mqtt = mqttListenPort === undefined ? undefined : new (await import('./transports/mqtt/transport.js')).MqttTransport(core, log, mqttStores, calls);
  let port: number;
  let tcpPort: number;
  let mqttPort: number;
  try {
    await listen(http, config.port, config.host).catch((err: unknown) => Promise.reject(new ListenError('--port', config.host, config.port, err)));
    port = (http.address() as AddressInfo).port;
    origins.listeningOn(config.host, port);
    log.info({ port, host: config.host }, 'switchboard listening');
    const open = pageUrls(config.host, port);
    log.info(open, `open ${open.chat} (chat), ${open.inspect} (live actors), ${open.metrics} (metrics); WebSocket ${open.websocket}`);
    const fdWarning = openFilesWarning(config.maxConnections, readOpenFilesSoftLimit());
    if (fdWarning) log.warn({ maxConnections: config.maxConnections }, fdWarning);
    tcpPort = tcp ? await tcp.listen(tcpListenPort!, config.host).catch((err: unknown) => Promise.reject(new ListenError('--tcp-port', config.host, tcpListenPort!, err))) : 0;
    mqttPort = mqtt ? await mqtt.listen(mqttListenPort!, config.host).catch((err: unknown) => Promise.reject(new ListenError('--mqtt-port', config.host, mqttListenPort!, err))) : 0;
  } catch (err) {
    // Half-started is worse than not started: whatever already listens or runs would keep the process alive.
    http.close();
    tcp?.close();
    mqtt?.close();
    actorsPage.close();
    supervisor.stop();
    stately?.stop();
    stalls.stop();
    await hooks?.close();
    calls?.close();
    mqttStores?.sessions.close();
    await engine.close();
    throw err;
  }
  if (tcp) log.info({ tcpPort, host: config.host, room: config.room }, 'tcp chat listening');
  if (mqtt) log.info({ mqttPort, host: config.host }, 'mqtt listening');
  // The line protocol is also reachable through the HTTP port, where a client picks its own room (checker, tools).
  if (tcp) upgrades.set(LINES_PATH, (req, socket, head) => tcp.upgrade(req, socket, head));

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      http.close();
      ws.close();
      sse.close();
      tcp?.close();
      mqtt?.close();
      actorsPage.close();
      const stopped = toPromise(supervisor).catch(() => undefined);
      supervisor.send({ type: 'SHUTDOWN' });
      // Close handshakes are bounded by closeTimeoutMs per connection; add slack for the last flushes.
      await Promise.race([stopped, delay(config.closeTimeoutMs + 1000)]);
      http.closeAllConnections();
      tcp?.destroyAll();
      mqtt?.destroyAll();
      // MQTT wills still waiting for their 5.0 delay go now: their timers end with this process (docs/mqtt.md).
      await mqtt?.wills.stop();
      stately?.stop();
      stalls.stop();
      await hooks?.close(2000); // the last disconnects reach the backend
      calls?.close();
      mqttStores?.sessions.close();
      await engine.close();
      log.info('switchboard stopped');
    })());

  return { config, hub, supervisor, actors, admission: core.admission, tokens, stalls, hooks, log, http, router, upgrades, port, tcpPort, mqttPort, close, observability: { page: actorsPage, metrics, stately } };
}

/** The modules only a cluster node runs (its engine, node calls, MQTT stores in Redis), loaded together. */
async function clusterModules() {
  const [engine, calls, stores] = await Promise.all([import('./engine/redis/engine.js'), import('./engine/redis/calls.js'), import('./transports/mqtt/redis-sessions.js')]);
  return { RedisEngine: engine.RedisEngine, NodeCalls: calls.NodeCalls, redisStores: stores.redisStores };
}

/** Header and request deadlines for the HTTP port, checked often enough that a short deadline holds. */
function httpTimeouts(ms: number): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  return { headersTimeout: ms, requestTimeout: ms, connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(ms / 4))) };
}

/** A port the broker could not listen on, named by the flag that sets it. */
export class ListenError extends Error {
  readonly code: string | undefined;

  constructor(
    readonly flag: '--port' | '--tcp-port' | '--mqtt-port',
    readonly host: string,
    readonly port: number,
    cause: unknown,
  ) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    const why = code === 'EADDRINUSE' ? 'address already in use' : code === 'EACCES' ? 'permission denied' : code === 'EADDRNOTAVAIL' ? 'address not available on this host' : String((cause as Error)?.message ?? cause);
    super(`cannot listen on ${flag} ${port} (${host}:${port}): ${why}; pick another ${flag}${code === 'EADDRNOTAVAIL' ? ' or --host' : ''}`, { cause });
    this.code = code;
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

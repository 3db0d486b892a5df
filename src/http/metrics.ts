// BrokerMetrics: GET /metrics in Prometheus text format (prom-client, one Registry per broker).
// Every value is read at scrape time from BrokerStats, the registry and the links: nothing here runs per delivery.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RecordableHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Engine } from '../engine/engine.js';
import type { Link } from '../actors/link.js';
import type { InspectionSampler } from '../inspect/sampler.js';

const STATES = ['connecting', 'online', 'idle', 'closing'] as const;
const TRANSPORTS = ['ws', 'tcp', 'mqtt', 'sse'] as const;

export interface MetricsSources {
  hub: Engine<Link>;
  /** Present when `--inspect` is on: how many inspection events were forwarded or sampled out. */
  inspection?: { sampler: InspectionSampler; dropped: () => number } | undefined;
  /** How late the broker's loop timer ran, in ns (LoopStalls.delays): the nodejs_eventloop_lag_* gauges; reset at each scrape. */
  loopDelays: RecordableHistogram;
  /** MQTT wills waiting on this node for their 5.0 Will Delay Interval (0 without MQTT). */
  mqttWillsDelayed?: (() => number) | undefined;
}

/** prom-client's event-loop lag summaries (`nodejs_eventloop_lag_<suffix>_seconds`), read here from a delay histogram. */
const LAG_STATS: readonly [suffix: string, what: string, read: (h: RecordableHistogram) => number][] = [
  ['min', 'The shortest', (h) => h.min],
  ['max', 'The longest', (h) => h.max],
  ['mean', 'The mean', (h) => h.mean],
  ['stddev', 'The standard deviation', (h) => h.stddev],
  ['p50', 'The 50th percentile', (h) => h.percentile(50)],
  ['p90', 'The 90th percentile', (h) => h.percentile(90)],
  ['p99', 'The 99th percentile', (h) => h.percentile(99)],
];

/** prom-client's event-loop lag gauges (its default metric `eventLoopLag`), by their documented names. */
const LAG_GAUGES = ['nodejs_eventloop_lag_seconds', ...LAG_STATS.map(([suffix]) => `nodejs_eventloop_lag_${suffix}_seconds`)];

/**
 * prom-client's default metrics but its event-loop lag, through its public API only: its lag monitor
 * (monitorEventLoopDelay) woke the loop every 10 ms, 100 wake-ups a second on an idle node, so it is set to sample
 * once a minute and its gauges are taken out of the registry; the same gauges are read from the broker's stall
 * timer instead (loopLagGauges, below).
 */
function collectDefaultMetricsButLag(registry: Registry): void {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 60_000 });
  for (const name of LAG_GAUGES) registry.removeSingleMetric(name);
}

export class BrokerMetrics {
  readonly registry = new Registry();

  constructor(sources: MetricsSources) {
    const { hub } = sources;
    const registers = [this.registry];
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });

    new Gauge({
      name: 'switchboard_connections',
      help: 'Open connections by connection-machine state and transport',
      labelNames: ['state', 'transport'],
      registers,
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const s of STATES) for (const t of TRANSPORTS) counts.set(`${s} ${t}`, 0);
        for (const link of hub.sessions()) {
          const key = `${link.state} ${link.transport}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        for (const [key, n] of counts) {
          const [state, transport] = key.split(' ');
          this.set({ state: state!, transport: transport! }, n);
        }
      },
    });
    counter('switchboard_connections_opened_total', 'Connections admitted since start', () => hub.stats.connectionsOpened);
    counter('switchboard_connections_closed_total', 'Connections closed since start', () => hub.stats.connectionsClosed);
    const traffic = (key: 'framesIn' | 'bytesIn') => () => {
      let n = hub.stats.retired[key];
      for (const link of hub.sessions()) n += link[key];
      return n;
    };
    const outbound = (key: 'framesOut' | 'bytesOut' | 'dropped') => () => {
      let n = hub.stats.retired[key];
      for (const link of hub.sessions()) n += link.mailbox[key];
      return n;
    };
    counter('switchboard_frames_received_total', 'Inbound frames (WebSocket messages and TCP lines)', traffic('framesIn'));
    counter('switchboard_bytes_received_total', 'Inbound payload bytes', traffic('bytesIn'));
    counter('switchboard_frames_sent_total', 'Outbound frames written to sockets', outbound('framesOut'));
    counter('switchboard_bytes_sent_total', 'Outbound bytes written to sockets (framing included)', outbound('bytesOut'));
    counter('switchboard_messages_published_total', 'Messages published (client pub and POST /api/publish)', () => hub.stats.published);
    counter('switchboard_messages_delivered_total', 'Message deliveries queued to subscriber mailboxes', () => hub.stats.delivered);
    counter('switchboard_messages_dropped_total', 'Queued frames dropped: drop-oldest overflow, or discarded on slow-consumer close', outbound('dropped'));
    counter('switchboard_slow_consumer_closes_total', 'Connections closed with 4001 (slow consumer)', () => hub.stats.slowConsumerCloses);
    counter('switchboard_actor_crashes_total', 'Connection actors that threw and were closed with 1011', () => hub.stats.crashes);
    new Counter({
      name: 'switchboard_errors_total',
      help: 'Protocol errors answered, by error code',
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        for (const [code, n] of hub.stats.errors) this.inc({ code }, n);
      },
    });
    const depth = () => {
      let sum = 0;
      let max = 0;
      for (const link of hub.sessions()) {
        const d = link.mailbox.depth;
        sum += d;
        if (d > max) max = d;
      }
      return { sum, max };
    };
    gauge('switchboard_mailbox_depth_sum', 'Frames queued in all mailboxes at scrape time', () => depth().sum);
    gauge('switchboard_mailbox_depth_max', 'Deepest mailbox at scrape time', () => depth().max);
    gauge('switchboard_engine_degraded', 'A cluster node whose Redis is unreachable, or one of whose Redis Cluster masters does not answer: 1 (publishes answer unavailable, all or those of that shard); 0 otherwise', () => (hub.health() === 'degraded' ? 1 : 0));
    counter('switchboard_cluster_messages_received_total', 'Cluster: messages this node received from Redis (only those of topics its clients subscribe to, and of the families of their wildcard filters; docs/cluster.md)', () => hub.stats.clusterMessagesReceived);
    counter('switchboard_cluster_messages_lost_total', 'Cluster: messages lost to this node: a gap its Redis stream no longer held when the node filled it (logged as "messages lost to this node"; docs/cluster.md)', () => hub.stats.clusterMessagesLost);
    counter('switchboard_cluster_messages_stale_total', 'Cluster: messages of an epoch their topic had left that reached this node late, dropped (docs/cluster.md, How it works)', () => hub.stats.clusterMessagesStale);
    counter('switchboard_cluster_reaper_passes_total', 'Cluster: passes this node\'s reaper finished over the node set, each looking for nodes whose heartbeat expired (passes never overlap; docs/cluster.md, Failures)', () => hub.stats.clusterReaperPasses);
    counter('switchboard_cluster_nodes_reaped_total', 'Cluster: dead nodes this node reaped (heartbeat expired: their clients announced timeout; a dead node is reaped by one survivor only)', () => hub.stats.clusterNodesReaped);
    gauge('switchboard_cluster_channels', 'Cluster: Redis channels this node listens on for messages (per topic, per wildcard family; dropped --interest-linger-ms after the last local subscriber left)', () => hub.stats.clusterChannels);
    gauge('switchboard_actors', 'Live actors: the supervisor plus one per connection', () => hub.sessionCount + 1);
    gauge('switchboard_mqtt_wills_delayed', 'MQTT wills waiting on this node for their 5.0 Will Delay Interval (published when it passes or their session ends; dropped when their session is resumed first)', () => sources.mqttWillsDelayed?.() ?? 0);
    const inspection = sources.inspection;
    if (inspection) {
      new Counter({
        name: 'switchboard_inspection_events_total',
        help: 'Inspection events for the Stately Inspector (--inspect), by outcome',
        labelNames: ['outcome'],
        registers,
        collect() {
          this.reset();
          this.inc({ outcome: 'forwarded' }, inspection.sampler.counts.forwarded);
          this.inc({ outcome: 'sampled_out' }, inspection.sampler.counts.sampledOut);
          this.inc({ outcome: 'dropped' }, inspection.dropped());
        },
      });
    }
    // Process CPU and memory, GC, handles (prom-client's), and event-loop lag (from the stall timer).
    collectDefaultMetricsButLag(this.registry);
    loopLagGauges(registers, sources.loopDelays);
  }

  async serve(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await this.registry.metrics();
    res.writeHead(200, { 'Content-Type': this.registry.contentType, 'Cache-Control': 'no-store' });
    res.end(text);
  }
}

/**
 * prom-client's nodejs_eventloop_lag_* gauges, same names: `_seconds` is how long a setImmediate took at scrape time;
 * the others summarise how late the broker's stall timer ran beyond its period since the last scrape (every 20 ms while
 * connections are open, every second otherwise). prom-client read them from a 10 ms monitorEventLoopDelay timer,
 * whose samples were whole intervals (~10 ms when on time); these are the delays alone (~0 when on time).
 */
function loopLagGauges(registers: Registry[], delays: RecordableHistogram): void {
  const seconds = (ns: number) => ns / 1e9;
  // Registered first: the registry collects all metrics at once, and this one sets the others before they are read.
  new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds.',
    registers,
    async collect() {
      const any = delays.count > 0;
      for (const [gauge, read] of stats) gauge.set(any ? seconds(read(delays)) : 0);
      delays.reset();
      const start = process.hrtime.bigint();
      await new Promise((resolve) => setImmediate(resolve));
      this.set(seconds(Number(process.hrtime.bigint() - start)));
    },
  });
  const stats = LAG_STATS.map(([suffix, what, read]) => [new Gauge({ name: `nodejs_eventloop_lag_${suffix}_seconds`, help: `${what} of the event loop timer's delays since the last scrape.`, registers }), read] as const);
}

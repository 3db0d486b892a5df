// RedisEngine: the cluster deployment. Many broker processes on one Redis behave as one broker: one total order and
// gapless seq per topic, resumes from the topic's stream on any node, presence / names / who / directs across
// nodes, dead nodes reaped by a survivor. What a request means is the protocol core's (engine/core.ts), the same as
// on one process; this file composes the Redis parts it runs on (docs/cluster.md, The engine's parts): RedisNode
// (membership, heartbeat, ids), RequestOrder (each session's requests in arrival order), RedisBroker (publish,
// streams, bus, interest, barrier) and RedisPresence (directory, presence relay).
import type { Logger } from 'pino';
import type { Occupancy, OccupancyListener, Session } from '../engine.js';
import { ProtocolCore } from '../core.js';
import { Locals } from '../local.js';
import type { MemoryEngineOptions } from '../options.js';
import type { Deployment, Turns } from '../seam.js';
import { RedisBroker } from './broker.js';
import { ClientDirectory } from './directory.js';
import { RedisNode, type RedisNodeOptions } from './node.js';
import { ClusterOccupancy } from './occupancy.js';
import { PresenceRelay, RemoteClient } from './presence-relay.js';
import { RedisPresence, subjectOf } from './presence-store.js';
import { refusal } from './refusals.js';
import { RequestOrder } from './request-order.js';

export interface RedisEngineOptions extends MemoryEngineOptions, RedisNodeOptions {
  /** Requests this node may have waiting on Redis at once; beyond it: `unavailable` (bounded memory while Redis is slow). */
  maxInflight: number;
  /** How long the node keeps listening to a topic's channel after its last local subscriber left (interest.ts). */
  interestLingerMs?: number;
  /** Least time between two publish script calls (ms): a busy node's publishes of that time go in one call (publish-batch.ts). */
  batchIntervalMs?: number;
  /** How long a topic's history list lives after its last publish (ms; 0 or absent: forever). */
  historyTtlMs?: number;
}

export class RedisEngine<S extends Session = Session> extends ProtocolCore<S> {
  /** This process as a cluster member: connections, life, heartbeat, reaping (node.ts). */
  readonly redis: RedisNode;
  /** This process's id in the cluster (heartbeat key, node channel, epochs it creates). */
  readonly node: string;

  constructor(options: RedisEngineOptions) {
    const local = new Locals<S>(options);
    const redis = new RedisNode({ ...options, stats: local.stats });
    const log = redis.log;
    const broker = new RedisBroker<S>(redis, local, {
      historySize: options.historySize,
      historyTopicBytes: options.historyTopicBytes,
      interestLingerMs: options.interestLingerMs,
      batchIntervalMs: options.batchIntervalMs,
      historyTtlMs: options.historyTtlMs,
      presence: (p) => local.tell(p.e, new RemoteClient(p.c), p.f, p.o),
    });
    const relay = new PresenceRelay({
      up: () => redis.up,
      publish: (payload) => broker.bus.presence(payload),
      publishAll: (payloads) => broker.bus.presenceAll(payloads),
      log,
    });
    const directory = new ClientDirectory<S>(redis, local.registry, log);
    const order = new RequestOrder<S>({ maxInflight: options.maxInflight, fail: (s, err) => local.fail(s, err), refusal, log });
    redis.attach({
      count: () => local.registry.size,
      records: () => [...local.registry.values()].map((c) => [c.id, JSON.stringify(directory.record(c))]),
      // Taken for dead: every node heard this node's clients end, so each is announced again (a `join` per filter)
      // and the events held meanwhile, older than that, are dropped; else the held events go out in order.
      reasserted: (takenForDead) =>
        takenForDead ? relay.announceAgain([...local.registry.values()].map((s) => ({ subject: subjectOf(s), filters: s.subscriptions }))) : relay.flush(),
      ticked: () => relay.pending && relay.flush(),
      lifeLost: () => broker.lifeLost(),
      subscriber: (up) => broker.subscriber(up),
      message: (channel, payload) => broker.bus.receive(channel, payload),
    });
    super(options, local, {
      broker,
      presence: new RedisPresence<S>(directory, relay, () => redis.up),
      ids: { next: () => redis.ids.take() },
      turns: orderedTurns(order),
      deployment: new ClusterDeployment(redis, broker, order, options.tickMs ?? 1500, log),
    });
    this.redis = redis;
    this.node = redis.id;
  }
}

/** Each session's requests on its RequestOrder chain; a publish starts before its turn (RequestOrder.enqueueEarly). */
function orderedTurns<S extends Session>(order: RequestOrder<S>): Turns<S> {
  return {
    request: (s, run, a, id) => order.enqueue(s, () => run(s, a), { id }),
    step: (s, run, id) => order.enqueue(s, run, { id, counted: false }),
    early: (s, start, answer, a, id) =>
      order.enqueueEarly(
        s,
        () => Promise.resolve(start(s, a)),
        (r) => answer(s, a, r),
        id,
      ),
  };
}

/** The node's life in the cluster: start (reach Redis), close (settle requests, leave), health, cluster-wide occupancy. */
class ClusterDeployment<S extends Session> implements Deployment {
  private readonly occupancies = new Set<ClusterOccupancy>();

  constructor(
    private readonly redis: RedisNode,
    private readonly broker: RedisBroker<S>,
    private readonly order: RequestOrder<S>,
    private readonly tickMs: number,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.redis.start();
  }

  async close(): Promise<void> {
    if (this.redis.closed) return;
    this.broker.close();
    for (const o of this.occupancies) await o.close();
    await this.redis.close(() => this.order.settle(2000));
  }

  health(): 'ok' | 'degraded' {
    return this.redis.health();
  }

  /** Holders of each filter across the cluster (webhooks' topic.occupied / topic.vacated, said once: occupancy.ts). */
  occupancy(listener: OccupancyListener): Occupancy {
    const o = new ClusterOccupancy({ node: this.redis.id, cmd: this.redis.cmd, scripts: this.redis.scripts, listener, tickMs: this.tickMs, log: this.log });
    this.occupancies.add(o);
    return o;
  }
}

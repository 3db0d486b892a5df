// RedisBroker: the cluster's Broker (engine/seam.ts). Publishes go to one script call per turn and slot
// (StreamPublisher, PublishBatch: seq, epoch, stream, channels); what the subscriber connection brings goes through
// the cursors (per topic in seq order, gaps filled from the streams) and LiveDelivery (held while a client resumes,
// replay duplicates skipped) to the core's fan-out; a resume reads the topics' streams (stream-resume.ts); Interest
// subscribes to the channels local filters need; NodeBus carries directs and barrier tokens on each node's channel,
// and presence (handed to the presence store).
import { Cluster } from 'ioredis';
import type { PublishResult, Session } from '../engine.js';
import type { ProtocolError, FrameId } from '../../protocol/errors.js';
import type { FrameOf } from '../../protocol/frames.js';
import type { Outgoing } from '../../protocol/outgoing.js';
import type { Locals } from '../local.js';
import type { Position, ResumeTerms } from '../resume.js';
import type { Broker, HistoryView, Publisher, ResumeAnswer } from '../seam.js';
import { Barrier } from './barrier.js';
import { NodeBus } from './bus.js';
import { Cursors } from './cursors.js';
import { CLASSIC, Interest, SHARDED } from './interest.js';
import { keySlot } from './outcome.js';
import { isWildcard } from '../../protocol/topic.js';
import { CHANNELS, KEYS, PARTITIONS, partitionTag } from './keys.js';
import { LiveDelivery } from './live-delivery.js';
import type { RedisNode } from './node.js';
import { OwnDeliveries } from './own-deliveries.js';
import type { BusPresence } from './presence-relay.js';
import { StreamPublisher } from './publisher.js';
import { refusal, unavailable } from './refusals.js';
import * as LUA from './scripts.js';
import { resumeFromStreams } from './stream-resume.js';

const OWN_DELIVERY_WAIT_MS = 2000;
const BARRIER_WAIT_MS = 1000;

/** The streams are the history; this process keeps none of its own to list. */
const NO_HISTORY: HistoryView = { topicCount: 0, namesBytes: 0, topics: () => [], position: () => undefined };

export interface RedisBrokerOptions {
  historySize: number;
  historyTopicBytes: number;
  /** How long the node keeps listening to a topic's channel after its last local subscriber left (interest.ts). */
  interestLingerMs?: number | undefined;
  /** Least time between two publish script calls (publish-batch.ts `intervalMs`); 0: one per turn. */
  batchIntervalMs?: number | undefined;
  /** How long a topic's history list lives after its last publish (ms; 0 or absent: forever). */
  historyTtlMs?: number | undefined;
  /** A presence event from the bus (any node's client), for this node's watchers. */
  presence: (p: BusPresence) => void;
}

export class RedisBroker<S extends Session> implements Broker<S> {
  readonly history = NO_HISTORY;
  readonly publisher: StreamPublisher;
  /** What the bus brings, per topic in seq order (gaps filled from the streams). */
  readonly cursors: Cursors;
  /** Presence, directs and barrier tokens over Redis PUB/SUB, and what the subscriber hears. */
  readonly bus: NodeBus;
  readonly barriers: Barrier;
  /** The channels this node listens on for messages (interest routing). */
  readonly channels: Interest;
  /** Delivered counts of this node's own publishes, met on the bus before or after the script's reply. */
  private readonly own = new OwnDeliveries(OWN_DELIVERY_WAIT_MS);
  /** Live messages to this node's subscribers (held while one resumes, duplicates of a replay skipped). */
  private readonly live: LiveDelivery<S>;

  constructor(
    private readonly redis: RedisNode,
    private readonly local: Locals<S>,
    options: RedisBrokerOptions,
  ) {
    const { log, cmd } = redis;
    this.live = new LiveDelivery<S>((topic, skip, push) => local.fanOut(topic, skip, push), this.own, redis.id);
    this.publisher = new StreamPublisher(redis, {
      historySize: options.historySize,
      historyTopicBytes: options.historyTopicBytes,
      hears: (topic) => this.channels.receives(topic),
      channels: redis.shards ? SHARDED : CLASSIC,
      own: this.own,
      late: (topic) => this.cursors.fillNow(topic),
      stats: local.stats,
      batchIntervalMs: options.batchIntervalMs,
      historyTtlMs: options.historyTtlMs,
    });
    this.cursors = new Cursors({
      deliver: (m) => this.live.deliver(m),
      read: (topic, from, count) => this.read(topic, from, count),
      closed: () => redis.closed,
      log,
      stats: local.stats,
    });
    this.bus = new NodeBus(
      redis,
      {
        message: (m) => this.cursors.receive(m),
        presence: options.presence,
        direct: (to, from, out) => this.directArrived(to, from, out),
        barrier: (token) => this.barriers.arrived(token),
      },
      local.stats,
      log,
    );
    this.barriers = new Barrier({
      via: () => (cmd instanceof Cluster ? [...cmd.nodes('master'), ...this.shardBarriers(cmd)] : [cmd]),
      channel: CHANNELS.node(redis.id),
      up: () => redis.up && redis.listening,
      waitMs: BARRIER_WAIT_MS,
    });
    this.channels = new Interest({
      listener: redis.shards ?? redis.bus,
      scheme: redis.shards ? SHARDED : CLASSIC,
      lingerMs: options.interestLingerMs ?? 5000,
      dropped: () => this.channelsDropped(),
      failed: (err) => log.info({ err: err.message }, 'interest (un)subscribe failed; the subscriber connection subscribes again when it is back'),
    });
    this.historySize = options.historySize;
  }

  private readonly historySize: number;

  /**
   * On a Redis Cluster the messages come over the sharded connections (one per master), not the classic subscriber:
   * a barrier token is also SPUBLISHed through each master, on a partition it serves, and comes back on this node's
   * sharded connection to it after every message that master published before (shards.ts).
   */
  private shardBarriers(cmd: Cluster): { publish(channel: string, message: string): Promise<unknown> }[] {
    const seen = new Set<string>();
    const via: { publish(channel: string, message: string): Promise<unknown> }[] = [];
    for (let k = 0; k < PARTITIONS; k++) {
      const owner = cmd.slots[keySlot(partitionTag(k))]?.[0];
      if (owner === undefined || seen.has(owner)) continue;
      seen.add(owner);
      const channel = CHANNELS.shardBarrier(k, this.redis.id);
      via.push({ publish: (_, message) => cmd.spublish(channel, message) });
    }
    return via;
  }

  get life(): string {
    return this.redis.life;
  }

  publish(topic: string, data: unknown, from: Publisher | null, echo: boolean, id: FrameId | undefined, key: string | undefined, qos?: 0 | 1 | 2, retain?: boolean): Promise<PublishResult | ProtocolError> {
    return this.publisher.publish(topic, data, from, echo, id, key, qos, retain);
  }

  /** A resume from the topics' streams; `unavailable` when Redis cannot answer. */
  async resume(frame: FrameOf<'sub'>, terms: ResumeTerms): Promise<ResumeAnswer | ProtocolError> {
    if (!this.redis.up) return unavailable(frame.id);
    // Read within this node's --history of each topic's newest message: another node's (or this one's before a
    // restart) may have kept more, and what lies before that is not this node's to replay.
    const read = (t: string, from: number, count: number) => this.read(t, from, count, this.historySize);
    const store = { topics: () => this.redis.cmd.smembers(KEYS.topics), read, historySize: this.historySize };
    try {
      return await resumeFromStreams(store, frame, terms, this.redis.life);
    } catch (err) {
      const refused = refusal(err, frame.id);
      if (!refused) throw err;
      return refused;
    }
  }

  hold(s: S): void {
    this.live.hold(s);
  }

  release(s: S): void {
    this.live.release(s);
  }

  replayedTo(s: S, positions: Map<string, Position>): void {
    this.live.replayedTo(s, positions);
  }

  forget(s: S): void {
    this.live.forget(s);
  }

  interest(filter: string, held: boolean): void {
    if (held) this.channels.want(filter);
    else this.channels.release(filter);
    this.local.stats.clusterChannels = this.channels.size;
    if (held && !isWildcard(filter)) void this.baseline(filter);
  }

  /**
   * Once this node listens on `topic`'s channel, where the topic stood (its meta): a message published after that
   * is then never lost to this node without notice, even before the first one reached it (cursors.ts `listening`).
   * Not on the subscriber's ack path. Wildcard filters' topics are not known in advance: they have no baseline.
   */
  private async baseline(topic: string): Promise<void> {
    await this.channels.ready(topic);
    if (!this.redis.up || !this.channels.receives(topic)) return;
    await this.standing(topic);
  }

  /** Reads where `topic` stands now and makes it the node's baseline for it (cursors.ts `listening`). */
  private async standing(topic: string): Promise<void> {
    const [seq, epoch] = await this.redis.cmd.hmget(KEYS.meta(topic), 'seq', 'epoch').catch(() => [undefined, undefined]);
    if (seq === undefined) return; // Redis did not answer: as before, from its first message
    this.cursors.listening(topic, epoch ?? '', seq === null ? 0 : Number(seq));
  }

  /** Once this node hears every channel `filter` needs (at once while the subscriber is down: it catches up when back). */
  ready(filter: string): Promise<void> | void {
    if (this.redis.listening) return this.channels.ready(filter);
    // The subscriber is away and the sub is acked now: the node catches up from where the topic stands at the ack.
    if (!isWildcard(filter) && this.redis.up) return this.standing(filter);
  }

  direct(node: string, to: string, from: { id: string; name: string }, json: string): Promise<boolean> {
    return this.bus.direct(node, to, from, json);
  }

  barrier(): Promise<void> {
    return this.barriers.wait();
  }

  /** The life changed (Redis lost its data): every topic is listed again at its next publish. */
  lifeLost(): void {
    this.publisher.forgetTopics();
  }

  /** The subscriber connection is back (catch up on what it missed) or gone (release the barrier's waiters). */
  subscriber(up: boolean): void {
    if (up) this.cursors.catchUp();
    else this.barriers.release();
  }

  close(): void {
    this.channels.close();
  }

  /** Channels were dropped: what the node knew of the topics it no longer hears is stale (it may miss any now). */
  private channelsDropped(): void {
    this.local.stats.clusterChannels = this.channels.size;
    const hears = (topic: string) => this.channels.receives(topic);
    this.cursors.keepOnly(hears);
    this.own.keepOnly(hears);
  }

  /** `count` entries of `topic`'s stream from seq `from`, none older than the newest `within` (scripts.ts READ). */
  private read(topic: string, from: number, count: number, within?: number): Promise<(string | null)[]> {
    const args = within === undefined ? [String(from), String(count)] : [String(from), String(count), String(within)];
    return this.redis.script(LUA.READ, [KEYS.meta(topic), KEYS.log(topic)], args) as Promise<(string | null)[]>;
  }

  /** A direct from another node for local client `to`, within its budget for directs. */
  private directArrived(to: string, from: { id: string; name: string }, out: Outgoing): void {
    const target = this.local.registry.find(to);
    if (target && this.local.direct(target, out) === 'full') this.redis.log.info({ client: target.id, from: from.id }, 'direct from another node dropped: recipient over its budget for directs');
  }
}

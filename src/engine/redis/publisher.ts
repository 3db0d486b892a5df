// StreamPublisher: a publish on the cluster. One script numbers the message, appends it to its topic's history
// (a Redis list, bounded by --history in messages and bytes), checks its idempotency key and publishes it on the topic's and its
// family's channels (interest.ts), all at once in Redis: one total order and gapless seq per topic. The publishes of
// one event-loop turn share one script call per slot (publish-batch.ts). A publish whose script may have run is
// `outcome_unknown`, never `unavailable`.
import { Cluster } from 'ioredis';
import type { PublishResult } from '../engine.js';
import type { BrokerStats } from '../stats.js';
import { ProtocolError, type FrameId } from '../../protocol/errors.js';
import type { Transport } from '../../protocol/frames.js';
import { encodeData, senderOf } from '../../protocol/outgoing.js';
import { duplicateOf, PUBLISH_KEY_WINDOW_MS } from '../idempotency.js';
import { MAX_CURSORS } from './cursors.js';
import type { ChannelScheme } from './interest.js';
import { KEYS } from './keys.js';
import type { RedisNode } from './node.js';
import { keySlot } from './outcome.js';
import type { OwnDeliveries } from './own-deliveries.js';
import { messageKey } from './own-deliveries.js';
import { PublishBatch, type PublishTopic } from './publish-batch.js';
import { unavailable } from './refusals.js';
import { withHistoryTtl } from './publish-script.js';
import * as LUA from './scripts.js';

/** Who published: shown to subscribers (`from`), and skipped when it asked for no echo. */
export interface Sender {
  id: string;
  name: string;
  transport: Transport;
  addr: string;
}

export interface StreamPublisherOptions {
  historySize: number;
  historyTopicBytes: number;
  /** Whether this node hears `topic` (a local filter wants it): then the result waits for its own delivery count. */
  hears: (topic: string) => boolean;
  /** Classic channels and PUBLISH (one Redis) or sharded ones and SPUBLISH (a Redis Cluster): interest.ts. */
  channels: ChannelScheme;
  own: OwnDeliveries;
  /** A publish of this node's that the bus did not bring back in time: read `topic`'s stream now (cursors.ts fillNow). */
  late?: (topic: string) => void;
  stats: BrokerStats;
  /** Least time between two PUBLISH_BATCH sends (publish-batch.ts `intervalMs`); 0: one per turn. */
  batchIntervalMs?: number | undefined;
  /** How long a topic's history list lives after its last publish (ms; 0 or absent: forever): publish-script.ts withHistoryTtl. */
  historyTtlMs?: number | undefined;
}

export class StreamPublisher {
  /** Topics listed in `sb:{g}:topics` already (wildcard resumes find topics there). */
  private readonly knownTopics = new Set<string>();
  /** Topics being listed now: the SADD their publishes wait for. */
  private readonly listing = new Map<string, Promise<boolean>>();
  private epochs = 0;
  private readonly parts = new Map<string, PublishTopic>();
  /** The publishes of one event-loop turn, sent as one script call per slot (publish-batch.ts). */
  readonly batch: PublishBatch;

  constructor(
    private readonly redis: RedisNode,
    private readonly options: StreamPublisherOptions,
  ) {
    const { cmd } = redis;
    const head = [String(options.historySize), String(options.historyTopicBytes), String(PUBLISH_KEY_WINDOW_MS)];
    // Sharded channels and SPUBLISH on a Redis Cluster (interest.ts SHARDED: in the slot of the batch's keys).
    const script = withHistoryTtl(options.channels.sharded ? LUA.SPUBLISH_BATCH : LUA.PUBLISH_BATCH, options.historyTtlMs ?? 0);
    this.batch = new PublishBatch({
      run: (keys, args, asText) => redis.publishScript(script, keys, args, asText),
      // On one Redis the lineage comes from its key (a Redis Cluster's script reaches only its own slot's keys).
      lineageKey: cmd instanceof Cluster ? undefined : KEYS.lineage,
      head: () => head,
      fresh: () => `${redis.life}.${redis.id}${(++this.epochs).toString(36)}`,
      slot: cmd instanceof Cluster ? keySlot : undefined,
      ready: (key) => redis.reach.when(key),
      failed: (err) => redis.noteTimeout(err),
      intervalMs: options.batchIntervalMs,
    });
  }

  /** A topic's frame head, keys and channels: built at its first publish, then reused (bounded: cleared when full). */
  private partsOf(topic: string): PublishTopic {
    let parts = this.parts.get(topic);
    if (parts) return parts;
    if (this.parts.size >= MAX_CURSORS) this.parts.clear();
    const [channel, family] = this.options.channels.publish(topic);
    parts = { head: `{"op":"msg","topic":${JSON.stringify(topic)},"seq":`, keys: [KEYS.meta(topic), KEYS.log(topic)], channel, family };
    this.parts.set(topic, parts);
    return parts;
  }

  /** Redis lost its data: every topic is listed again at its next publish. */
  forgetTopics(): void {
    this.knownTopics.clear();
  }

  /**
   * One script numbers, stores and publishes the message. The result waits until the message came back over the bus
   * and was delivered here, so a publisher's own echo precedes its ack and `delivered` counts this node's deliveries.
   */
  async publish(topic: string, data: unknown, from: Sender | null, echo: boolean, id?: FrameId, key?: string, qos?: 0 | 1 | 2, retain = false): Promise<PublishResult | ProtocolError> {
    const encoded = encodeData(data, id);
    if (encoded instanceof ProtocolError) return encoded;
    if (!this.redis.up) return unavailable(id);
    const parts = this.partsOf(topic);
    const sender = from ? `,"from":${senderOf(from).json}` : '';
    const tail = `${sender},"ts":${Date.now()},"data":${encoded.json}}`;
    // The transport field carries a publisher's MQTT marks (read back by parseBusMessage, cursors.ts):
    // `<transport>:<qos>`, the QoS followed by `r` for the retain flag; none (older entries too) for QoS 2 without it.
    const transport = (qos === undefined || qos === 2) && !retain ? (from?.transport ?? '') : `${from?.transport ?? ''}:${qos ?? 2}${retain ? 'r' : ''}`;
    const prefix = `m${this.redis.id}\n${transport}\n${from?.addr ?? ''}\n${from && !echo ? from.id : ''}\n`;
    const known = this.knownTopics.has(topic);
    if (!known) {
      // Sent before the script on the same connection: a topic is listed before its first message exists. Publishes
      // of the topic made while it is being listed wait for that same SADD: each waiting for one of its own would let
      // a later publish, made once the topic is known, overtake them (per-session order is publish order).
      let listed = this.listing.get(topic);
      if (!listed) {
        listed = this.redis.cmd
          .sadd(KEYS.topics, topic)
          // SADD answers a count: anything else is no listing (a reply that crossed over, see node.ts LIFE).
          .then((n: unknown) => typeof n === 'number' && (this.knownTopics.size < MAX_CURSORS && this.knownTopics.add(topic), true))
          .catch(() => false)
          .finally(() => this.listing.delete(topic));
        this.listing.set(topic, listed);
      }
      // On a Redis Cluster the set (`{g}`) and the topic live on different shards, one connection each: waited for,
      // and a topic that could not be listed is not published (a wildcard resume would never find its messages and
      // could answer recovered: true): refused, the script never ran. On one Redis both share the connection.
      if (this.redis.cmd instanceof Cluster && !(await listed)) return unavailable(id);
    }
    // Heard here (a local filter wants it): the result waits for the message to come back, so `delivered` counts
    // this node's deliveries and an echo precedes the ack. Not heard: nobody here can receive it (0 here).
    const heard = this.options.hears(topic);
    const reply = await this.batch.add({ topic: parts, tail, prefix, key: key === undefined ? undefined : KEYS.pubKey(topic, key), id });
    if (reply instanceof ProtocolError) return reply;
    const [seq, epoch, duplicate] = reply;
    if (duplicate) return duplicateOf({ seq, epoch });
    // A topic taken for listed whose sequence this publish started (Redis lost its data, and with it the topic set,
    // before this node noticed the new life): listed again, else a wildcard resume never finds it (recovered: true).
    if (known && seq === 1) await this.redis.cmd.sadd(KEYS.topics, topic).catch(() => undefined);
    this.options.stats.published++;
    const delivered = heard ? await this.options.own.wait(messageKey(topic, epoch, seq), this.options.late && (() => this.options.late!(topic))) : 0;
    return { seq, epoch, delivered };
  }
}

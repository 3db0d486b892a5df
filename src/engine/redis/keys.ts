// Key layout and channels of the Redis engine. Every key of one topic carries the hash tag of the topic's partition
// (`{<partition tag>}`, one of PARTITIONS by a hash of the topic): one slot in Redis Cluster, so the publish script
// touches one slot, and the topic's sharded channels (interest.ts) can carry the same tag, so the script SPUBLISHes
// them on its own shard. Every cluster-wide key shares `{g}` (the reaper's script touches several of them at once).
import { keySlot } from './outcome.js';

/**
 * Topics are spread over this many partitions. A partition is one slot of a Redis Cluster: its topics' keys and its
 * sharded channels live there. A wildcard filter on a cluster listens on one channel per partition (interest.ts), so
 * more partitions spread the load over more shards but cost wildcard subscribers more channels.
 */
export const PARTITIONS = 64;

/** FNV-1a of `text`'s UTF-16 units (the same hash as interest.ts's families). */
export function fnv1a(text: string, end = text.length): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < end; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The partition of a topic. */
export function partitionOf(topic: string): number {
  return fnv1a(topic) % PARTITIONS;
}

/**
 * The hash tag of partition `k`: the first `<k>.<i>` whose slot lies in the k-th of PARTITIONS equal bands of the
 * 16,384 slots, so the partitions spread evenly over any cluster whose masters own contiguous ranges (as
 * `redis-cli --cluster create` and even resharding make them). The same on every node and every version.
 */
const PARTITION_TAGS: readonly string[] = Array.from({ length: PARTITIONS }, (_, k) => {
  const band = 16384 / PARTITIONS;
  for (let i = 0; ; i++) {
    const tag = `${k}.${i}`;
    if (Math.floor(keySlot(tag) / band) === k) return tag;
  }
});

export function partitionTag(k: number): string {
  return PARTITION_TAGS[k]!;
}

/** `sb:{<partition tag>}`: what every key and sharded channel of `topic` starts with. */
export function topicPrefix(topic: string): string {
  return `sb:{${PARTITION_TAGS[partitionOf(topic)]!}}`;
}

export const KEYS = {
  /** Hash: seq, epoch, bytes (of the history) of a topic. Missing = the topic was never published, or Redis lost it (a new epoch follows). */
  meta: (topic: string) => `${topicPrefix(topic)}:meta:${topic}`,
  /**
   * List of the topic's recent bus entries (`m` + prefix + `msg` frame), oldest first: exactly seqs seq-len+1 .. seq.
   * (Until stop 28 a stream under `:log:`; a topic from then keeps its seq and epoch, not that history. Stops 28–29
   * also kept each entry's frame bytes in a list `:hsizes:`, no longer read or written: docs/cluster.md, Upgrading.)
   */
  log: (topic: string) => `${topicPrefix(topic)}:hist:${topic}`,
  /** String "<seq> <epoch>" of a keyed publish, for the key's window (PX): a retry gets this position back. */
  pubKey: (topic: string, key: string) => `${topicPrefix(topic)}:k:${topic.length}:${topic}:${key}`,
  /**
   * String: on one Redis, the replication id the publish script last read from INFO (publish-script.ts, lineage),
   * written without replication. Not on a Redis Cluster, where a script reaches only its slot's keys.
   */
  lineage: 'sb:lineage',
  /** String: the cluster's life (docs/protocol.md): set once (SET NX); a new one only after Redis lost it. */
  life: 'sb:{g}:life',
  /** Counter client ids are reserved from, in blocks (INCRBY). */
  ids: 'sb:{g}:ids',
  /** Set of every topic ever published (wildcard resumes look topics up here). */
  topics: 'sb:{g}:topics',
  /** Hash: client id → JSON record {id,name,addr,transport,state,node,subs}. `who` and the reaper read it. */
  clients: 'sb:{g}:clients',
  /** Hash: name → client id (unique names across the cluster). */
  names: 'sb:{g}:names',
  /** Set of live node ids. */
  nodes: 'sb:{g}:nodes',
  /** String with a TTL, refreshed while the node runs: its absence means the node is gone. */
  heartbeat: (node: string) => `sb:{g}:hb:${node}`,
  /** Set of the client ids a node holds. */
  nodeClients: (node: string) => `sb:{g}:nc:${node}`,
  /** Hash: filter → how many nodes hold it (occupancy.ts: topic.occupied / topic.vacated once per cluster). */
  occupancy: 'sb:{g}:occ',
  /** Set of the filters a node holds (what its death takes out of `occupancy`). */
  nodeOccupancy: (node: string) => `sb:{g}:occ:${node}`,
  /** Set of the nodes that hold filters (the ones a survivor checks for a dead heartbeat). */
  occupants: 'sb:{g}:occ-nodes',
} as const;

export const CHANNELS = {
  /** Presence events, to every node. Messages go on per-topic and family channels instead (interest.ts). */
  bus: 'sb:bus',
  /** Directs and barrier tokens for one node. */
  node: (node: string) => `sb:node:${node}`,
  /**
   * On a Redis Cluster: barrier tokens for one node through partition `k`'s shard (sharded, on the connection that
   * brings that shard's messages: barrier.ts).
   */
  shardBarrier: (k: number, node: string) => `sb:{${PARTITION_TAGS[k]!}}:b:${node}`,
} as const;

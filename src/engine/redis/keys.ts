// Key layout and channels of the Redis engine. Every key of one topic shares the hash tag `{<topic>}` (one slot in
// Redis Cluster, so the publish script touches one slot); every cluster-wide key shares `{g}` (the reaper's script
// touches several of them at once).

/**
 * The topic inside its keys' braces. Redis hashes the text between the first `{` and the first `}` after it, so a
 * topic starting with `}` would give an empty tag (the whole key is hashed: its meta and its log in different slots).
 * Those topics get a `#` in front (`sb:{#}x}:meta`, tag `#`): no publish topic contains `#`, so no key is shared.
 */
const tag = (topic: string) => (topic.startsWith('}') ? `#${topic}` : topic);

export const KEYS = {
  /** Hash: seq, epoch, bytes (of the history) of a topic. Missing = the topic was never published, or Redis lost it (a new epoch follows). */
  meta: (topic: string) => `sb:{${tag(topic)}}:meta`,
  /** Stream of the topic's recent `msg` frames, entry id `0-<seq>`, field `m` = the frame's JSON. */
  log: (topic: string) => `sb:{${tag(topic)}}:log`,
  /** List of the frame bytes of each entry in `log`, oldest first (the byte budget is trimmed without reading the stream). */
  sizes: (topic: string) => `sb:{${tag(topic)}}:sizes`,
  /** String "<seq> <epoch>" of a keyed publish, for the key's window (PX): a retry gets this position back. */
  pubKey: (topic: string, key: string) => `sb:{${tag(topic)}}:k:${key}`,
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
} as const;

export const CHANNELS = {
  /** Presence events, to every node. Messages go on per-topic and family channels instead (interest.ts). */
  bus: 'sb:bus',
  /** Directs and barrier tokens for one node. */
  node: (node: string) => `sb:node:${node}`,
} as const;

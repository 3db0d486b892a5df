// The in-memory engine's settings (taken from Config by broker.ts) and what its costly requests are charged.
import type { StallClock } from './stalls.js';

/** A `who` reply costs one inbound-rate token per this many bytes (on top of the frame's own token). */
export const WHO_BYTES_PER_TOKEN = 1024;
/**
 * A subscription change costs one inbound-rate token per this many match-cache nodes its invalidation looked at
 * (18-150 ns each, test/bench/topic-index.ts): a wildcard churned over many cached topics is paid by its client.
 */
export const CACHE_NODES_PER_TOKEN = 64;
/**
 * A `join` or `leave` that a client's own `sub` or `unsub` announces costs it one inbound-rate token per this many
 * presence watchers told on its node (as renames are rate limited: a client must not queue its neighbours events for
 * free by churning a watched filter).
 */
export const PRESENCE_WATCHERS_PER_TOKEN = 32;
/** A `who` whose list had to be built again costs one token per this many clients listed and sorted (~0.2 µs each). */
export const WHO_LISTED_PER_TOKEN = 32;

export interface MemoryEngineOptions {
  serverName: string;
  version: string;
  heartbeatMs: number;
  idleMs: number;
  historySize: number;
  historyBytes: number;
  historyTopicBytes: number;
  maxTopics: number;
  /** Bytes of topic names the history keeps (live and forgotten topics); default: unbounded but by count. */
  topicNamesBytes?: number;
  maxSubscriptions: number;
  /** Which connections are closed when idle (docs/protocol.md, Liveness). */
  idleClose: 'tcp' | 'all' | 'none';
  /** Bounds of one resuming `sub`: messages and bytes replayed. */
  replayMaxMessages: number;
  replayMaxBytes: number;
  /** Renames per second per connection (0 = unlimited); over it: rate_limited. */
  renameRate?: number;
  /** The chat room topic; with more presence watchers than roomAnnounceMax its joins and leaves are not announced. */
  room?: string;
  roomAnnounceMax?: number;
  /** TCP clients are named by their address by default (the classic room); false under --room-addresses hide. */
  tcpNamedByAddress?: boolean;
  /** The broker's stall clock: budgets counted when frames are read are not charged for its stalls. */
  stalls?: StallClock;
}

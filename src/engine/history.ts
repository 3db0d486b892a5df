// History: per-topic sequences (seq + epoch) and bounded rings of recent messages for resuming `sub`. Pure.
// Bounds: messages per topic, bytes per topic, bytes in total (oldest evicted first), topics remembered (least
// recently published forgotten first), and the bytes of the topic names it keeps (live and forgotten ones, in the
// topic trie). Positions never lie: a restarted sequence gets a new epoch.
import { randomBytes } from 'node:crypto';
import { chargeReplay, replayCount, topicVerdict, type MissReason, type Position, type ReplayBudget, type Seen } from './resume.js';

export type { MissReason, Position, Seen };

interface TopicLog<M> {
  topic: string;
  epoch: string;
  seq: number;
  /**
   * Ring of the most recent messages, oldest at `start`; `count` live slots; grows up to `perTopic`. Their seqs are
   * consecutive and the newest is `seq` (an append either stores its message or empties the ring), so no entry
   * records its own: the ring holds the messages themselves, no object per message beside them.
   */
  ring: (M | undefined)[];
  start: number;
  count: number;
  bytes: number;
  /** A topic of the same name was forgotten before in this process: messages of its earlier life are gone. */
  reborn: boolean;
}

interface TrieNode<M> {
  /** Made by the first child: most nodes of long unique topics have none. */
  children: Map<string, TrieNode<M>> | undefined;
  log: TopicLog<M> | undefined;
  /** The name of a topic of this name that was forgotten in this process's life (its messages are lost). */
  forgotten: string | undefined;
}

/**
 * What one trie node is taken to cost in memory, besides its segment's characters: the node, its entry in its
 * parent's Map and its share of a Map of its own (measured: 270-290 bytes a node of 16-segment topics, logs included).
 */
export const TRIE_NODE_BYTES = 280;

/** Forgotten topic names remembered (in the trie), so a resume never passes over what they lost; see also namesBytes. */
const FORGOTTEN_MAX = 100_000;

export interface ReplayLimits {
  /** Topics a wildcard resume may concern (found through the topic trie, not a scan). */
  maxTopics: number;
  /** Messages and bytes one resume may replay; a topic that does not fit is not replayed (`replay_limit`). */
  maxMessages: number;
  maxBytes: number;
}

export interface Resume<M> {
  /** Messages to deliver after the ack, per topic in seq order. */
  messages: M[];
  /** Current position of each topic concerned (a Map: topics are client input, `__proto__` is a topic like any). */
  positions: Map<string, Position>;
  /** Topics that could not be recovered, and why. Empty = recovered. */
  missed: Map<string, MissReason>;
  /** True when a wildcard search stopped at maxTopics: topics beyond it were not looked at. */
  truncated: boolean;
  /** Topic-tree nodes a wildcard search visited: its cost, charged to the client that asked. */
  walked: number;
}

export interface HistoryLimits {
  perTopic: number;
  maxTopics: number;
  /** Bytes of messages kept per topic. */
  topicBytes: number;
  /** Bytes of messages kept in total. */
  totalBytes: number;
  /**
   * Bytes the topic names kept may take (the trie of live and forgotten topics, TRIE_NODE_BYTES a node plus its
   * segment): over it, forgotten names are dropped first (oldest first), then the least recently published topics.
   */
  namesBytes?: number;
}

/** The seq of the oldest message `log` still holds (its next seq when it holds none). */
function oldestSeq<M>(log: TopicLog<M>): number {
  return log.seq - log.count + 1;
}

/**
 * Whether the message `seq` of `log` is still stored. A log's messages leave oldest first, and a forgotten topic's
 * log (a new one replaces it if the topic comes back) is emptied: an item older than its log's oldest is gone.
 */
function isLive<M>(log: TopicLog<M>, seq: number): boolean {
  return log.count > 0 && seq >= oldestSeq(log);
}

/** A fresh id for this process's sequences: every topic created here gets `<boot>.<n>`. */
function bootId(): string {
  return randomBytes(6).readUIntBE(0, 6).toString(36).padStart(10, '0').slice(-8);
}

export class History<M> {
  private readonly logs = new Map<string, TopicLog<M>>();
  private readonly root: TrieNode<M> = { children: undefined, log: undefined, forgotten: undefined };
  /** Estimated bytes of the trie (its nodes and their segments), held to limits.namesBytes. */
  private trieBytes = 0;
  /** Names forgotten, oldest first (some may be alive again, or dropped already): which to drop first. */
  private forgottenQueue: string[] = [];
  private forgottenHead = 0;
  /**
   * Every stored message in append order (oldest first), for the global byte budget: its topic's log and its seq, in
   * two arrays (no object per message). An item is gone once its seq is older than its log's oldest (see isLive).
   */
  private queueLogs: TopicLog<M>[] = [];
  private queueSeqs: number[] = [];
  private queueHead = 0;
  private totalBytes = 0;
  /** Messages still stored (not gone), so the queue can be compacted when it holds mostly gone ones. */
  private live = 0;
  readonly boot = bootId();
  private created = 0;
  /** Names marked forgotten in the trie; past FORGOTTEN_MAX, `namesLost` and no resume vouches for unseen topics. */
  private forgottenCount = 0;
  private namesLost = false;
  /** Messages evicted by any bound (counted for metrics). */
  evicted = 0;

  constructor(
    private readonly limits: HistoryLimits,
    private readonly sizeOf: (message: M) => number,
  ) {}

  get bytes(): number {
    return this.totalBytes;
  }

  get topicCount(): number {
    return this.logs.size;
  }

  /** Estimated bytes of the topic names kept (live and forgotten): at most limits.namesBytes. */
  get namesBytes(): number {
    return this.trieBytes;
  }

  /**
   * Assigns the next position of `topic` and records the message `build` makes for it. `build` and `sizeOf` run
   * before anything changes: if either throws (a payload that cannot be encoded), the sequence is untouched.
   */
  append(topic: string, build: (seq: number, epoch: string) => M): { seq: number; epoch: string; message: M } {
    const existing = this.logs.get(topic);
    const epoch = existing?.epoch ?? `${this.boot}.${(this.created + 1).toString(36)}`;
    const seq = (existing?.seq ?? 0) + 1;
    const message = build(seq, epoch);
    const bytes = this.sizeOf(message);
    let log = existing;
    if (log) {
      this.logs.delete(topic); // re-insert: Map order doubles as recency order
    } else {
      this.created++;
      if (this.logs.size >= this.limits.maxTopics) this.forget(this.logs.values().next().value!);
      const node = this.trieNode(topic, true)!;
      log = { topic, epoch, seq: 0, ring: [], start: 0, count: 0, bytes: 0, reborn: node.forgotten !== undefined };
      node.log = log;
    }
    this.logs.set(topic, log);
    if (!existing) this.holdNamesBudget();
    log.seq = seq;
    if (this.limits.perTopic > 0 && bytes <= this.limits.topicBytes && bytes <= this.limits.totalBytes) {
      this.store(log, message, bytes);
    } else {
      this.trimAll(log); // a message too big to keep: what came before it cannot be replayed without it either
    }
    return { seq, epoch, message };
  }

  position(topic: string): Position | undefined {
    const log = this.logs.get(topic);
    return log ? { seq: log.seq, epoch: log.epoch } : undefined;
  }

  /**
   * Resumes concrete `topic` from `seen`, or every remembered topic matching wildcard `filter` from its entry in
   * `seenByTopic` (absent = seen nothing). Bounded by `limits` in topics, messages and bytes.
   */
  resume(filter: string, wildcard: boolean, seenByTopic: (topic: string) => Seen, limits: ReplayLimits, anchored = true): Resume<M> {
    const out: Resume<M> = { messages: [], positions: new Map(), missed: new Map(), truncated: false, walked: 0 };
    const budget = { messages: limits.maxMessages, bytes: limits.maxBytes };
    if (!wildcard) {
      const log = this.logs.get(filter);
      const seen = seenByTopic(filter);
      // No position (since 0): vouched for only as a wildcard's unlisted topic is: in the client's life, and the
      // topic not forgotten (with messages the client would have had) since; unknown when its names were lost.
      const unvouched = !seen.listed && (!anchored || this.namesLost || (log ? log.reborn : this.trieNode(filter, false)?.forgotten !== undefined));
      if (!log) {
        if (seen.seq > 0 || unvouched) out.missed.set(filter, 'unknown_position');
        return out;
      }
      if (unvouched) {
        out.positions.set(filter, { seq: log.seq, epoch: log.epoch });
        out.missed.set(filter, 'unknown_position');
        return out;
      }
      this.resumeTopic(log, seen, out, budget);
      return out;
    }
    const found: TopicLog<M>[] = [];
    const lost: string[] = [];
    const walk = { nodes: 0 };
    out.truncated = this.collect(this.root, filter.split('/'), 0, found, lost, limits.maxTopics, walk);
    out.walked = walk.nodes;
    // In topic order, as a cluster node answers (stream-resume.ts sorts the topics it finds): which topics a tight
    // replay budget leaves out (`replay_limit`), the ack's `reason` and the replay's order do not depend on the order
    // the topics were first published in.
    found.sort((x, y) => (x.topic < y.topic ? -1 : x.topic > y.topic ? 1 : 0));
    lost.sort();
    // Topics the client has no position for are vouched for only when its other positions are from this life
    // (`anchored`), and no topic matching the filter lost messages by being forgotten (or their names were lost).
    if (!anchored || this.namesLost || out.truncated) out.missed.set(filter, out.truncated ? 'replay_limit' : 'unknown_position');
    for (const topic of lost) if (!seenByTopic(topic).listed) out.missed.set(topic, 'unknown_position');
    for (const log of found) {
      const seen = seenByTopic(log.topic);
      // A topic the client never saw: it missed nothing only if this is the life its other positions are from,
      // and the topic was not forgotten (with messages the client would have had) in between.
      if (!seen.listed && (!anchored || log.reborn)) {
        out.positions.set(log.topic, { seq: log.seq, epoch: log.epoch });
        out.missed.set(log.topic, 'unknown_position');
        continue;
      }
      this.resumeTopic(log, seen, out, budget);
    }
    return out;
  }

  *topics(): IterableIterator<[topic: string, position: Position]> {
    for (const [topic, log] of this.logs) yield [topic, { seq: log.seq, epoch: log.epoch }];
  }

  private resumeTopic(log: TopicLog<M>, seen: Seen, out: Resume<M>, budget: ReplayBudget): void {
    const position = { seq: log.seq, epoch: log.epoch };
    out.positions.set(log.topic, position);
    const oldest = oldestSeq(log);
    const verdict = topicVerdict(seen, position, oldest);
    // A miss is reported; a trimmed topic still replays what it holds (a miss all the same: some are gone).
    if (typeof verdict === 'string') out.missed.set(log.topic, verdict);
    const n = replayCount(verdict, position, oldest);
    if (n === 0) return;
    const cap = log.ring.length;
    let bytes = 0;
    for (let i = log.count - n; i < log.count; i++) bytes += this.sizeOf(log.ring[(log.start + i) % cap]!);
    if (!chargeReplay(budget, n, bytes)) {
      // Too much: nothing of it is replayed. A trimmed topic stays `history_trimmed` (the graver miss).
      if (typeof verdict === 'number') out.missed.set(log.topic, 'replay_limit');
      return;
    }
    for (let i = log.count - n; i < log.count; i++) out.messages.push(log.ring[(log.start + i) % cap]!);
  }

  /**
   * Topics under `node` matching `segments[i..]`: live ones into `found`, forgotten ones (not alive again) into
   * `lost`, at most `max` in all; true when it stopped early.
   */
  private collect(node: TrieNode<M>, segments: string[], i: number, found: TopicLog<M>[], lost: string[], max: number, walk: { nodes: number }): boolean {
    walk.nodes++;
    const take = (n: TrieNode<M>): boolean => {
      if (!n.log && !n.forgotten) return false;
      if (found.length + lost.length >= max) return true;
      if (n.log) found.push(n.log);
      else lost.push(n.forgotten!);
      return false;
    };
    if (i === segments.length) return take(node);
    const segment = segments[i]!;
    const children = node.children;
    if (segment === '#') {
      if (take(node)) return true; // `a/#` matches `a` itself
      if (children) for (const child of children.values()) if (this.collect(child, ['#'], 0, found, lost, max, walk)) return true;
      return false;
    }
    if (segment === '+') {
      if (children) for (const child of children.values()) if (this.collect(child, segments, i + 1, found, lost, max, walk)) return true;
      return false;
    }
    const child = children?.get(segment);
    return child ? this.collect(child, segments, i + 1, found, lost, max, walk) : false;
  }

  private store(log: TopicLog<M>, message: M, bytes: number): void {
    const cap = this.limits.perTopic;
    if (log.count === cap) this.dropOldest(log);
    while (log.count > 0 && log.bytes + bytes > this.limits.topicBytes) this.dropOldest(log);
    const pos = (log.start + log.count) % cap;
    if (pos === log.ring.length) log.ring.push(message);
    else log.ring[pos] = message;
    log.count++;
    log.bytes += bytes;
    this.totalBytes += bytes;
    this.live++;
    this.queueLogs.push(log);
    this.queueSeqs.push(log.seq);
    while (this.totalBytes > this.limits.totalBytes) this.evictGlobalOldest();
    this.compactQueue();
  }

  private dropOldest(log: TopicLog<M>): void {
    const message = log.ring[log.start]!;
    log.ring[log.start] = undefined;
    log.start = (log.start + 1) % this.limits.perTopic;
    log.count--;
    const bytes = this.sizeOf(message);
    log.bytes -= bytes;
    this.totalBytes -= bytes;
    this.live--;
    this.evicted++;
    if (log.count === 0) log.start = 0;
  }

  private trimAll(log: TopicLog<M>): void {
    while (log.count > 0) this.dropOldest(log);
  }

  private evictGlobalOldest(): void {
    while (this.queueHead < this.queueLogs.length) {
      const log = this.queueLogs[this.queueHead]!;
      const seq = this.queueSeqs[this.queueHead]!;
      this.queueHead++;
      if (!isLive(log, seq)) continue;
      // Per topic the ring is in append order too, so the globally oldest message is its topic's oldest.
      this.dropOldest(log);
      break;
    }
  }

  /**
   * Drops gone items from the global queue once they outnumber the live ones (amortised O(1) per append). Those
   * before the head count too: under the total byte bound the head moves on at every append, and the arrays would
   * otherwise only grow.
   */
  private compactQueue(): void {
    const logs = this.queueLogs;
    if (logs.length > 2 * this.live + 1024) {
      const seqs = this.queueSeqs;
      const keptLogs: TopicLog<M>[] = [];
      const keptSeqs: number[] = [];
      for (let i = this.queueHead; i < logs.length; i++) {
        if (!isLive(logs[i]!, seqs[i]!)) continue;
        keptLogs.push(logs[i]!);
        keptSeqs.push(seqs[i]!);
      }
      this.queueLogs = keptLogs;
      this.queueSeqs = keptSeqs;
      this.queueHead = 0;
    }
  }

  private forget(log: TopicLog<M>): void {
    this.trimAll(log);
    this.logs.delete(log.topic);
    const segments = log.topic.split('/');
    const path = this.pathOf(segments);
    const node = path[path.length - 1]!;
    node.log = undefined;
    // Remember the name (bounded): a later resume must not pass over the messages it lost.
    if (node.forgotten === undefined) {
      if (this.forgottenCount < FORGOTTEN_MAX) {
        node.forgotten = log.topic;
        this.forgottenCount++;
        this.forgottenQueue.push(log.topic);
      } else {
        this.namesLost = true;
      }
    }
    this.prune(segments, path);
    this.compactQueue(); // its entries in the global queue are gone now
  }

  /**
   * Keeps the names within limits.namesBytes: the oldest forgotten names go first (then no resume vouches for
   * unseen topics: `namesLost`), then the least recently published topics (their names become forgotten ones, so
   * they go next). The topic just created stays.
   */
  private holdNamesBudget(): void {
    const budget = this.limits.namesBytes;
    if (budget === undefined) return;
    while (this.trieBytes > budget) {
      if (this.forgottenHead < this.forgottenQueue.length) this.dropForgotten(this.forgottenQueue[this.forgottenHead++]!);
      else if (this.logs.size > 1) this.forget(this.logs.values().next().value!);
      else break;
      if (this.forgottenHead > 1024 && this.forgottenHead * 2 > this.forgottenQueue.length) {
        this.forgottenQueue = this.forgottenQueue.slice(this.forgottenHead);
        this.forgottenHead = 0;
      }
    }
  }

  /** Forgets the name of forgotten topic `topic` (when it is not alive again): its branch of the trie goes. */
  private dropForgotten(topic: string): void {
    const segments = topic.split('/');
    const path = this.pathOf(segments);
    const node = path[segments.length];
    if (node?.forgotten === undefined) return; // dropped already
    node.forgotten = undefined;
    this.forgottenCount--;
    if (node.log) return; // alive again: its log remembers it was reborn
    this.namesLost = true;
    this.prune(segments, path);
  }

  /** The nodes from the root along `segments` (shorter when the topic is not in the trie). */
  private pathOf(segments: readonly string[]): TrieNode<M>[] {
    const path: TrieNode<M>[] = [this.root];
    for (const s of segments) {
      const next = path[path.length - 1]!.children?.get(s);
      if (!next) break;
      path.push(next);
    }
    return path;
  }

  /** Removes the nodes of `path` that hold nothing any more, from the leaf up. */
  private prune(segments: readonly string[], path: TrieNode<M>[]): void {
    for (let i = segments.length; i > 0; i--) {
      const n = path[i]!;
      if (n.log || n.forgotten !== undefined || (n.children && n.children.size > 0)) break;
      const parent = path[i - 1]!;
      parent.children!.delete(segments[i - 1]!);
      if (parent.children!.size === 0) parent.children = undefined;
      this.trieBytes -= TRIE_NODE_BYTES + segments[i - 1]!.length;
    }
  }

  private trieNode(topic: string, create: boolean): TrieNode<M> | undefined {
    let n = this.root;
    for (const s of topic.split('/')) {
      let child = n.children?.get(s);
      if (!child) {
        if (!create) return undefined;
        (n.children ??= new Map()).set(s, (child = { children: undefined, log: undefined, forgotten: undefined }));
        this.trieBytes += TRIE_NODE_BYTES + s.length;
      }
      n = child;
    }
    return n;
  }
}

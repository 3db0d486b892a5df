// History: per-topic sequence numbers and a bounded ring of recent messages for `sub` with `since`. Pure.
import { filterMatches, isWildcard } from '../topics/topic.js';

interface TopicLog<M> {
  seq: number;
  /** Recent messages, oldest first; at most `perTopic`. */
  recent: { seq: number; message: M }[];
}

export interface Replay<M> {
  messages: M[];
  /** True when nothing after `since` has been forgotten. */
  complete: boolean;
}

export class History<M> {
  private readonly logs = new Map<string, TopicLog<M>>();

  /** `perTopic` messages are kept for replay; at most `maxTopics` topics are remembered (least recently published forgotten first). */
  constructor(
    private readonly perTopic: number,
    private readonly maxTopics: number,
  ) {}

  /** Assigns the next sequence number of `topic` (1, 2, 3, …) and records `message` under it. */
  append(topic: string, build: (seq: number) => M): { seq: number; message: M } {
    let log = this.logs.get(topic);
    if (log) {
      this.logs.delete(topic); // re-insert: Map order doubles as recency order
    } else {
      log = { seq: 0, recent: [] };
      if (this.logs.size >= this.maxTopics) this.logs.delete(this.logs.keys().next().value!);
    }
    this.logs.set(topic, log);
    const seq = ++log.seq;
    const message = build(seq);
    if (this.perTopic > 0) {
      log.recent.push({ seq, message });
      if (log.recent.length > this.perTopic) log.recent.shift();
    }
    return { seq, message };
  }

  lastSeq(topic: string): number {
    return this.logs.get(topic)?.seq ?? 0;
  }

  /** Messages with seq > `since` on every topic matching `filter`, oldest first per topic. */
  replay(filter: string, since: number): Replay<M> {
    const messages: M[] = [];
    let complete = true;
    const add = (log: TopicLog<M>) => {
      if (log.seq <= since) return;
      const oldest = log.recent[0]?.seq ?? log.seq + 1;
      if (oldest > since + 1) complete = false;
      for (const r of log.recent) if (r.seq > since) messages.push(r.message);
    };
    if (!isWildcard(filter)) {
      const log = this.logs.get(filter);
      if (log) add(log);
    } else {
      for (const [topic, log] of this.logs) if (filterMatches(filter, topic)) add(log);
    }
    return { messages, complete };
  }

  *topics(): IterableIterator<[topic: string, lastSeq: number]> {
    for (const [topic, log] of this.logs) yield [topic, log.seq];
  }
}

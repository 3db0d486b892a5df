// StreamResume: a resuming `sub` answered from the topics' Redis streams on any node. The meaning (terms, verdict per
// topic, the ack) is engine/resume.ts's, shared with the in-memory history; this finds the topics a wildcard
// concerns (the `sb:{g}:topics` set), reads each stream from the client's position, and collects what to replay.
import type { FrameOf } from '../../protocol/frames.js';
import { MAX_POSITIONS } from '../../protocol/frames.js';
import type { Outgoing } from '../../protocol/outgoing.js';
import { filterMatches, isWildcard } from '../../protocol/topic.js';
import { chargeReplay, replayCount, resumeAck, topicVerdict, type MissReason, type Position, type ResumeTerms } from '../resume.js';
import { parseBusMessage, type BusMessage } from './cursors.js';

export interface StreamStore {
  /** Every topic ever published (for a wildcard). */
  topics(): Promise<string[]>;
  /**
   * Reads `count` entries of `topic`'s stream from seq `from`, or from the oldest it holds within `historySize` of its
   * newest when that is later: [seq, epoch, lost, id, `m`+body, …] (seq and epoch null: no topic; lost '1': its
   * sequence restarted over an older one, whose messages are gone).
   */
  read(topic: string, from: number, count: number): Promise<(string | null)[]>;
  /** Messages a topic's stream keeps at most (--history). */
  historySize: number;
}

export interface StreamResumeResult {
  /** The ack's fields. */
  ack: Record<string, unknown>;
  /** Messages to queue after the ack, per topic in seq order. */
  messages: Outgoing[];
  /** Each topic's position: live messages at or below it were replayed (or precede the client's position). */
  positions: Map<string, Position>;
  /** Topics looked through to find the wildcard's (every topic ever published). */
  work: number;
}

export async function resumeFromStreams(store: StreamStore, frame: FrameOf<'sub'>, terms: ResumeTerms, life: string): Promise<StreamResumeResult> {
  const { seen: seenOf, anchored, budget } = terms;
  const wildcard = isWildcard(frame.topic);
  // Maps: topics are client input (`__proto__`, `toString` are topics like any).
  const positions = new Map<string, Position>();
  const missed = new Map<string, MissReason>();
  const messages: Outgoing[] = [];
  let truncated = false;
  let topics = [frame.topic];
  let work = 0;
  if (wildcard) {
    const all = await store.topics();
    work = all.length;
    topics = all.filter((t) => filterMatches(frame.topic, t)).sort();
    if (topics.length > MAX_POSITIONS) {
      truncated = true;
      topics = topics.slice(0, MAX_POSITIONS);
    }
    if (!anchored || truncated) missed.set(frame.topic, truncated ? 'replay_limit' : 'unknown_position');
  }
  const reads = await Promise.all(topics.map((t) => store.read(t, seenOf(t).seq + 1, budget.messages + 1)));
  topics.forEach((topic, i) => {
    const [seqText, ep, lost, ...flat] = reads[i]!;
    const seen = seenOf(topic);
    if (seqText === null || seqText === undefined || ep === null || ep === undefined) {
      // Listed without data: Redis lost it. A position on it is answered by resumeAck (a position it cannot check).
      // (A concrete topic the client saw nothing of, never published in its life: nothing missed.)
      if (wildcard ? !seen.listed : seen.seq > 0 || !anchored) missed.set(topic, 'unknown_position');
      return;
    }
    const position = { seq: Number(seqText), epoch: ep };
    positions.set(topic, position);
    // No position (unlisted under a wildcard, or a concrete since 0): the client saw nothing of it since its life,
    // which vouches only while the topic's messages since then are all in its current sequence. One that restarted
    // over an older sequence (a failover, a slot that moved: the older one's messages are gone) is a topic partly
    // forgotten: not vouched for.
    if (!seen.listed && (!anchored || lost === '1')) {
      missed.set(topic, 'unknown_position');
      return;
    }
    const entries: BusMessage[] = [];
    for (let k = 0; k < flat.length; k += 2) {
      const m = parseBusMessage(flat[k + 1]!.slice(1));
      if (m) entries.push(m);
    }
    // Replayable: the stream still holds seen+1 onwards, within --history of the last seq. READ starts at the oldest
    // entry within that when seen+1 is not: a trimmed topic replays what is (a miss all the same: some are gone). The
    // stream may hold more than this node's --history (another node's, or this one's before a restart, was larger):
    // read from seen+1, its `count` entries could end before the newest, and nothing was replayed.
    const oldestKept = Math.max(entries[0]?.seq ?? position.seq + 1, position.seq - store.historySize + 1);
    const verdict = topicVerdict(seen, position, oldestKept);
    if (typeof verdict === 'string') missed.set(topic, verdict);
    const n = replayCount(verdict, position, oldestKept);
    if (n === 0) return;
    const first = position.seq - n + 1;
    const replay = entries.filter((m) => m.seq >= first).slice(0, n);
    const bytes = replay.reduce((sum, m) => sum + m.out.bytes, 0);
    if (replay.length < n || !chargeReplay(budget, n, bytes)) {
      // Too much (READ reads one more than the budget): nothing of it is replayed. A trimmed topic stays `history_trimmed`.
      if (typeof verdict === 'number') missed.set(topic, 'replay_limit');
      return;
    }
    for (const m of replay) messages.push(m.out);
  });
  return { ack: resumeAck(frame, positions, missed, truncated, life), messages, positions, work };
}

// TopicPositions: the last (epoch, seq) one subscription has seen per concrete topic. It decides which messages
// are new (exactly once, in order), what to send to resume, and what the broker's recovery verdict means. Pure.
import type { Position, RecoveryReason, SubAck } from './wire.js';

// MQTT matching and the wildcard test are the protocol's own (`+` one segment, `#` last: zero or more).
export { filterMatches as matches, isWildcard } from '../protocol/topic.js';
import { isWildcard } from '../protocol/topic.js';

/** What a `sub` frame carries to resume: protocol 2's `since` and `epoch`, numbers or maps. */
export interface ResumeFields {
  since: number | Record<string, number>;
  epoch?: string | Record<string, string>;
}

export interface Verdict {
  recovered: boolean;
  reason?: RecoveryReason;
  /** Topic → why it could not be recovered. */
  missed: Record<string, RecoveryReason>;
  /** The broker's current positions (empty from a protocol-1 broker). */
  positions: Record<string, Position>;
}

/** At most this many topics in a wildcard's `since` map (the protocol's bound); the rest resume from 0 and dedupe locally. */
const MAX_RESUME_ENTRIES = 1000;

export class TopicPositions {
  private readonly last = new Map<string, Position>();

  /** True when (topic, epoch, seq) is new: then it becomes the topic's position. Anything at or below it is a duplicate. */
  accept(topic: string, seq: number, epoch: string | undefined): boolean {
    const last = this.last.get(topic);
    const renumbered = last !== undefined && epoch !== undefined && last.epoch !== undefined && epoch !== last.epoch;
    if (last !== undefined && !renumbered && seq <= last.seq) return false;
    this.last.set(topic, { seq, epoch });
    return true;
  }

  get(topic: string): Position | undefined {
    return this.last.get(topic);
  }

  get size(): number {
    return this.last.size;
  }

  snapshot(): Record<string, Position> {
    return Object.fromEntries(this.last);
  }

  /** Seeds positions (e.g. saved by the app from a previous run). */
  load(positions: Record<string, Position>): void {
    for (const [topic, p] of Object.entries(positions)) this.last.set(topic, { seq: p.seq, epoch: p.epoch });
  }

  /** `since`/`epoch` for `filter`: a number and a string for a concrete topic, maps for a wildcard. */
  resume(filter: string): ResumeFields {
    if (!isWildcard(filter)) {
      const p = this.last.get(filter);
      if (!p) return { since: 0 };
      return p.epoch === undefined ? { since: p.seq } : { since: p.seq, epoch: p.epoch };
    }
    const entries = [...this.last].slice(-MAX_RESUME_ENTRIES);
    if (entries.length === 0) return { since: 0 };
    const since: Record<string, number> = {};
    const epoch: Record<string, string> = {};
    for (const [topic, p] of entries) {
      since[topic] = p.seq;
      if (p.epoch !== undefined) epoch[topic] = p.epoch;
    }
    return Object.keys(epoch).length > 0 ? { since, epoch } : { since };
  }

  /**
   * Reads the ack of a resume that sent `sent`. Topics the broker could not recover restart from its current
   * position (nothing of them is replayed); a position sent without an epoch cannot be checked, so it counts as
   * not recovered even when a protocol-1 broker says `recovered: true`.
   */
  verdict(filter: string, sent: ResumeFields, ack: SubAck): Verdict {
    const positions = ack.positions ?? {};
    const missed: Record<string, RecoveryReason> = { ...(ack.missed ?? {}) };
    const sentSince = typeof sent.since === 'number' ? undefined : sent.since;
    const sentEpoch = typeof sent.epoch === 'object' ? sent.epoch : undefined;
    const resumedTopics: [string, number, string | undefined][] = sentSince
      ? Object.entries(sentSince).map(([t, s]) => [t, s, sentEpoch?.[t]])
      : [];
    // A number above 0 is a position on a concrete topic: the filter itself.
    if (typeof sent.since === 'number' && sent.since > 0 && !isWildcard(filter)) {
      resumedTopics.push([filter, sent.since, typeof sent.epoch === 'string' ? sent.epoch : undefined]);
    }
    if (ack.recovered === false && Object.keys(missed).length === 0) {
      for (const [t] of resumedTopics) missed[t] = ack.reason ?? 'unknown_position';
    }
    for (const [t, s, e] of resumedTopics) if (s > 0 && e === undefined && !Object.hasOwn(missed, t)) missed[t] = 'unknown_position';
    for (const topic of Object.keys(missed)) {
      const now = positions[topic];
      if (now) this.last.set(topic, { seq: now.seq, epoch: now.epoch });
      else this.last.delete(topic); // unknown: the next message on it is taken, whatever its seq
    }
    const topics = Object.keys(missed);
    if (topics.length === 0 && ack.recovered !== false) return { recovered: true, missed, positions };
    return { recovered: false, reason: ack.reason ?? missed[topics[0]!], missed, positions };
  }
}

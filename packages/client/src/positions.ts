// TopicPositions: the last (epoch, seq) one subscription has seen per concrete topic. It decides which messages
// are new (exactly once, in order), what to send to resume, and what the broker's recovery verdict means. Pure.
// Topics are keys that come from the broker and the app: they live in Maps, and the records handed out have no
// prototype, so a topic named `__proto__` or `constructor` is a topic like any other.
import { isWildcard } from './topics.js';
import type { Position, RecoveryReason, SubAck } from './wire.js';

/** What a `sub` frame carries to resume: protocol 2's `since` and `epoch`, numbers or maps. */
export interface ResumeFields {
  since: number | Record<string, number>;
  epoch?: string | Record<string, string>;
}

/** The verdict of a subscribe that asked for a replay (history, saved positions, or a resume after a reconnect). */
export interface Recovery {
  /** True only when nothing the subscription asked for was missed. */
  recovered: boolean;
  reason?: RecoveryReason;
  /** Topic → why it could not be recovered (a record without prototype). */
  missed: Record<string, RecoveryReason>;
  /** The broker's current position per topic (a record without prototype; empty from a protocol-1 broker). */
  positions: Record<string, Position>;
}

/** At most this many topics in a wildcard's `since` map (the protocol's bound); the rest resume from 0 and dedupe locally. */
const MAX_RESUME_ENTRIES = 1000;

/** A record without prototype: `__proto__`, `constructor` or `toString` are ordinary keys in it. */
export function topicRecord<V>(entries: Iterable<readonly [string, V]> = []): Record<string, V> {
  const record = Object.create(null) as Record<string, V>;
  for (const [key, value] of entries) record[key] = value;
  return record;
}

/** A position as the app or the broker wrote it, or undefined when it is not one. */
export function readPosition(value: unknown): Position | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { seq, epoch } = value as { seq?: unknown; epoch?: unknown };
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return undefined;
  if (epoch !== undefined && typeof epoch !== 'string') return undefined;
  return epoch === undefined ? { seq } : { seq, epoch };
}

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

  /** Sets (or, without `p`, forgets) a topic's position: a recovery verdict moved it. */
  place(topic: string, p: Position | undefined): void {
    if (p) this.last.set(topic, { seq: p.seq, epoch: p.epoch });
    else this.last.delete(topic);
  }

  get size(): number {
    return this.last.size;
  }

  /** Copies of the positions, in a record without prototype (JSON-ready: save it, pass it back as `positions`). */
  snapshot(): Record<string, Position> {
    return topicRecord([...this.last].map(([t, p]) => [t, p.epoch === undefined ? { seq: p.seq } : { seq: p.seq, epoch: p.epoch }] as const));
  }

  /** Seeds positions (e.g. saved by the app from a previous run); they were checked by the caller. */
  load(positions: ReadonlyMap<string, Position>): void {
    for (const [topic, p] of positions) this.last.set(topic, { seq: p.seq, epoch: p.epoch });
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
    const since = topicRecord(entries.map(([t, p]) => [t, p.seq] as const));
    const withEpoch = entries.filter(([, p]) => p.epoch !== undefined);
    if (withEpoch.length === 0) return { since };
    return { since, epoch: topicRecord(withEpoch.map(([t, p]) => [t, p.epoch!] as const)) };
  }

  /**
   * Reads the ack of a resume that sent `sent`. Topics the broker could not recover restart from its current
   * position (nothing of them is replayed), except a `history_trimmed` one: the broker replays what it still holds
   * of it after the ack, so it keeps the position it had (the replay is taken; a replay that did not fit leaves
   * nothing to take below the next live message, which is taken all the same). A position sent without an epoch
   * cannot be checked, so it counts as not recovered even when a protocol-1 broker says `recovered: true`.
   */
  verdict(filter: string, sent: ResumeFields, ack: SubAck): Recovery {
    const positions = new Map<string, Position>();
    for (const [topic, value] of ownEntries(ack.positions)) {
      const p = readPosition(value);
      if (p) positions.set(topic, p);
    }
    const missed = new Map<string, RecoveryReason>();
    for (const [topic, why] of ownEntries(ack.missed)) missed.set(topic, typeof why === 'string' ? why : 'unknown_position');
    const replaying = trimmedReplays(ack);
    const resumed: [topic: string, seq: number, epoch: string | undefined][] = [];
    if (typeof sent.since === 'object') {
      const epochs = typeof sent.epoch === 'object' ? new Map(ownEntries(sent.epoch)) : new Map<string, string>();
      for (const [t, s] of ownEntries(sent.since)) resumed.push([t, s, epochs.get(t)]);
    } else if (sent.since > 0 && !isWildcard(filter)) {
      // A number above 0 is a position on a concrete topic: the filter itself.
      resumed.push([filter, sent.since, typeof sent.epoch === 'string' ? sent.epoch : undefined]);
    }
    if (ack.recovered === false && missed.size === 0) {
      for (const [t] of resumed) missed.set(t, ack.reason ?? 'unknown_position');
    }
    for (const [t, s, e] of resumed) if (s > 0 && e === undefined && !missed.has(t)) missed.set(t, 'unknown_position');
    for (const topic of missed.keys()) {
      if (replaying.has(topic)) continue;
      const now = positions.get(topic);
      if (now) this.last.set(topic, { seq: now.seq, epoch: now.epoch });
      else this.last.delete(topic); // unknown: the next message on it is taken, whatever its seq
    }
    const out = { missed: topicRecord(missed), positions: topicRecord(positions) };
    if (missed.size === 0 && ack.recovered !== false) return { recovered: true, ...out };
    const reason = ack.reason ?? missed.values().next().value;
    return reason === undefined ? { recovered: false, ...out } : { recovered: false, reason, ...out };
  }

  /** A protocol-1 broker cannot say whether a wildcard's positions still hold (a restart renumbers silently). */
  unverifiedVerdict(): Recovery {
    const missed = topicRecord<RecoveryReason>([...this.last.keys()].map((t) => [t, 'unknown_position'] as const));
    return { recovered: false, reason: 'unknown_position', missed, positions: topicRecord() };
  }
}

/**
 * The topics the ack's `missed` names `history_trimmed` (protocol 2): the broker replays what it still holds of
 * them after the ack (when it fits its replay budget), so their positions stay where they were to take it.
 */
export function trimmedReplays(ack: SubAck): Set<string> {
  return new Set(ownEntries(ack.missed).filter(([, why]) => why === 'history_trimmed').map(([topic]) => topic));
}

/** The own entries of a record from JSON (or built here); nothing for a value that is not an object. */
function ownEntries<V>(record: Record<string, V> | undefined): [string, V][] {
  return typeof record === 'object' && record !== null ? Object.entries(record) : [];
}

// Resume: the meaning of a resuming `sub` (docs/protocol.md, Resuming), the same for every engine. Pure: the terms
// (what the client says it saw, whether its positions are anchored in this life, how much may be replayed), the
// verdict on one topic given where its history starts, and the ack that answers it. Engines only find the messages.
import { MAX_POSITIONS, type FrameOf } from '../protocol/frames.js';
import type { SessionMailbox } from './engine.js';

export interface Position {
  seq: number;
  epoch: string;
}

export type MissReason = 'epoch_changed' | 'history_trimmed' | 'unknown_position' | 'replay_limit';

/** What the client says it saw on one topic: seq 0 = nothing (epoch may be absent). */
export interface Seen {
  seq: number;
  epoch?: string | undefined;
  /**
   * False for a topic of a wildcard filter that the client gave no position for. The broker vouches that it
   * missed nothing there only when `anchored`: the client's other positions are from this process's life.
   */
  listed: boolean;
}

/** Topics one wildcard resume may concern (the same bound as positions in one `sub`). */
export const RESUME_MAX_TOPICS = MAX_POSITIONS;

/** Messages and bytes a resume may still replay; each topic replayed is charged to it. */
export interface ReplayBudget {
  messages: number;
  bytes: number;
}

export interface ResumeTerms {
  /** What the client says it saw on `topic`. */
  seen: (topic: string) => Seen;
  /** Its positions are from `life`: a topic it gave no position for can be vouched for. */
  anchored: boolean;
  budget: ReplayBudget;
}

/**
 * The terms of a resuming `sub`: what the client says it saw per topic, whether its positions are anchored in
 * `life` (the engine's memory), and how much may be replayed to it: within `limits` and what its mailbox can take.
 */
export function resumeTerms(frame: FrameOf<'sub'>, life: string, mailbox: SessionMailbox, limits: { maxMessages: number; maxBytes: number }): ResumeTerms {
  const { since, epoch } = frame;
  const has = (map: object, topic: string) => Object.hasOwn(map, topic);
  const seen = (topic: string): Seen => {
    if (typeof since === 'number') return { seq: since, epoch: typeof epoch === 'string' ? epoch : undefined, listed: since > 0 };
    const listed = since !== undefined && has(since, topic) && since[topic]! > 0;
    const e = epoch && typeof epoch === 'object' && has(epoch, topic) ? epoch[topic] : undefined;
    return { seq: listed ? since[topic]! : 0, epoch: e, listed };
  };
  // Topics the client gave no position for are vouched for only relative to positions from this life of the
  // engine's memory (or when it claims to have seen nothing at all).
  const epochs = typeof epoch === 'object' ? Object.values(epoch) : [];
  const claimsNothing = frame.life === undefined && (typeof since === 'number' || Object.values(since ?? {}).every((s) => s === 0));
  const anchored = frame.life !== undefined ? frame.life === life : claimsNothing || epochs.some((e) => e.startsWith(life + '.'));
  // Replays fit in what the client's own mailbox can take now, so a resume never makes it a slow consumer.
  const room = Math.max(0, Math.floor(mailbox.capacity / 2) - mailbox.depth);
  const byteRoom = Math.max(0, Math.floor(mailbox.byteCapacity / 2) - mailbox.bytes);
  return { seen, anchored, budget: { messages: Math.min(limits.maxMessages, room), bytes: Math.min(limits.maxBytes, byteRoom) } };
}

/**
 * The verdict on one topic at `position` whose history holds `oldest` onwards: why the client cannot be brought up
 * to date from what it `seen`, or how many messages after its position to replay (0: it is up to date). A topic
 * trimmed past the client's position (`history_trimmed`) still replays what is held: see replayCount.
 */
export function topicVerdict(seen: Seen, position: Position, oldest: number): MissReason | number {
  if (seen.seq > 0 && seen.epoch !== position.epoch) return seen.epoch === undefined ? 'unknown_position' : 'epoch_changed';
  if (seen.seq > position.seq) return 'unknown_position';
  if (seen.seq === position.seq) return 0;
  if (oldest > seen.seq + 1) return 'history_trimmed';
  return position.seq - seen.seq;
}

/**
 * How many messages to replay (the newest of the topic, up to `position`) for `verdict` on a topic whose history
 * holds `oldest` onwards: every one after the client's position when it can be brought up to date; for
 * `history_trimmed`, what is still held (oldest … current): the miss is still reported, the rest is given; none for
 * any other miss (`epoch_changed`, `unknown_position`: the client's position means nothing in this sequence).
 */
export function replayCount(verdict: MissReason | number, position: Position, oldest: number): number {
  if (typeof verdict === 'number') return verdict;
  return verdict === 'history_trimmed' ? Math.max(0, position.seq - oldest + 1) : 0;
}

/** Charges a replay of `messages` and `bytes` to `budget`; false (nothing charged) when it does not fit. */
export function chargeReplay(budget: ReplayBudget, messages: number, bytes: number): boolean {
  if (messages > budget.messages || bytes > budget.bytes) return false;
  budget.messages -= messages;
  budget.bytes -= bytes;
  return true;
}

/**
 * The ack fields of a resuming `sub`. Topics are client input: `positions` and `missed` are Maps until they are
 * encoded (Object.fromEntries makes `__proto__` an own key, never the prototype).
 */
export function resumeAck(frame: FrameOf<'sub'>, positions: Map<string, Position>, missed: Map<string, MissReason>, truncated: boolean, life: string): Record<string, unknown> {
  const { since } = frame;
  // A position the client sent for a topic the broker no longer holds (forgotten, or restarted) cannot be checked.
  if (typeof since === 'object' && !truncated) {
    for (const topic of Object.keys(since)) if (since[topic]! > 0 && !positions.has(topic)) missed.set(topic, 'unknown_position');
  }
  const fields: Record<string, unknown> = { recovered: missed.size === 0 && !truncated, life };
  const first = missed.values().next();
  if (!first.done) {
    fields.reason = first.value;
    fields.missed = Object.fromEntries(missed);
  } else if (truncated) {
    fields.reason = 'replay_limit';
  }
  if (truncated) fields.truncated = true;
  fields.positions = Object.fromEntries(positions);
  return fields;
}

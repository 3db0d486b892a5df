// Where a persistent MQTT session got to: per topic, the position of the last message delivered to it, and the
// engine life those positions are from. A reconnect resumes each of the session's filters from them.
import { isWildcard } from '../../protocol/topic.js';
import { mqttMatches } from './match.js';
import { POSITIONS_MAX, type Position } from './store.js';

/** A life no broker has (lives are letters and digits): positions sent with it vouch for no topic beyond themselves. */
const NO_LIFE = '-';

export class SessionPositions {
  constructor(
    /** By topic, most recent last (the oldest goes first when full). */
    readonly byTopic: Map<string, Position>,
    /** The engine life the positions are from (the last `sub` ack's). */
    public life: string | undefined,
  ) {}

  /**
   * The `since` / `epoch` / `life` of a resuming sub of `filter`: the positions of the topics it matches. A session
   * at its bound of positions may have dropped some (the oldest went first): a topic without one may then have been
   * delivered already, so it is not replayed from its start (that would deliver again what the client has: QoS 2
   * twice) but followed live — an exact filter without `since`, a wildcard with a life no broker has, so that its
   * unlisted topics are not vouched for and not replayed. What was published on them while the client was away is
   * lost (docs/mqtt.md).
   */
  of(filter: string): Record<string, unknown> {
    const full = this.byTopic.size >= POSITIONS_MAX;
    const life = full ? { life: NO_LIFE } : this.life === undefined ? {} : { life: this.life };
    if (!isWildcard(filter)) {
      const p = this.byTopic.get(filter);
      if (p) return { since: p.seq, epoch: p.epoch, ...life };
      return full ? {} : { since: 0, ...life };
    }
    const since: Record<string, number> = Object.create(null) as Record<string, number>;
    const epoch: Record<string, string> = Object.create(null) as Record<string, string>;
    let n = 0;
    for (const [topic, p] of this.byTopic) {
      if (n >= POSITIONS_MAX) break;
      if (!mqttMatches(filter, topic)) continue;
      since[topic] = p.seq;
      epoch[topic] = p.epoch;
      n++;
    }
    if (n === 0) return full ? {} : { since: 0, ...life };
    return { since, epoch, ...life };
  }

  /**
   * Whether the message of `topic` at `p` was delivered already (its seq at or before the session's position in the
   * same epoch): two filters resumed from the same positions replay a topic both match twice; it goes out once.
   */
  delivered(topic: string, p: Position): boolean {
    const last = this.byTopic.get(topic);
    return last !== undefined && last.epoch === p.epoch && last.seq >= p.seq;
  }

  /** A message of `topic` at `p` was delivered. */
  remember(topic: string, p: Position): void {
    const positions = this.byTopic;
    positions.delete(topic); // most recent last: the oldest goes first when full
    if (positions.size >= POSITIONS_MAX) positions.delete(positions.keys().next().value!);
    positions.set(topic, p);
  }

  /**
   * A message of `topic` at `p` was meant for the session but not sent (left unwritten when the connection ended, or
   * held back as the session was cut): a topic with no position yet gets the one just before it, so that the resume
   * delivers it rather than starting after it (fill). A topic with a position keeps it: the resume starts there.
   */
  before(topic: string, p: Position): void {
    if (!this.byTopic.has(topic)) this.remember(topic, { seq: p.seq - 1, epoch: p.epoch });
  }

  /**
   * The message of `topic` at `p` was counted delivered as it was put to wait (the client's Receive Maximum, flow.ts)
   * and never sent: the position goes back to just before it, whatever it was, so the resume delivers it and what
   * waited behind it. Called for the first message of each topic that waited: the ones sent came before it.
   */
  back(topic: string, p: Position): void {
    this.remember(topic, { seq: p.seq - 1, epoch: p.epoch });
  }

  /**
   * When the connection ends: the positions now of the topics `filters` match and the session has none for (none
   * delivered to it yet), so that what is published while it is away is what it resumes.
   */
  fill(filters: Iterable<string>, current: (filter: string) => Iterable<[string, Position]>): void {
    for (const filter of filters) {
      for (const [topic, p] of current(filter)) if (!this.byTopic.has(topic)) this.remember(topic, p);
    }
  }
}

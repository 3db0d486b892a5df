// Where a persistent MQTT session got to: per topic, the position of the last message delivered to it, and the
// engine life those positions are from. A reconnect resumes each of the session's filters from them.
import { isWildcard } from '../../protocol/topic.js';
import { mqttMatches } from './match.js';
import { POSITIONS_MAX, type Position } from './store.js';

export class SessionPositions {
  constructor(
    /** By topic, most recent last (the oldest goes first when full). */
    readonly byTopic: Map<string, Position>,
    /** The engine life the positions are from (the last `sub` ack's). */
    public life: string | undefined,
  ) {}

  /** The `since` / `epoch` / `life` of a resuming sub of `filter`: the positions of the topics it matches. */
  of(filter: string): Record<string, unknown> {
    const life = this.life === undefined ? {} : { life: this.life };
    if (!isWildcard(filter)) {
      const p = this.byTopic.get(filter);
      return p ? { since: p.seq, epoch: p.epoch, ...life } : { since: 0, ...life };
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
    return n === 0 ? { since: 0, ...life } : { since, epoch, ...life };
  }

  /** A message of `topic` at `p` was delivered. */
  remember(topic: string, p: Position): void {
    const positions = this.byTopic;
    positions.delete(topic); // most recent last: the oldest goes first when full
    if (positions.size >= POSITIONS_MAX) positions.delete(positions.keys().next().value!);
    positions.set(topic, p);
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

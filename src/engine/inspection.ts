// LocalInspection: an engine's inspection (EngineInspection in engine.ts) read off the in-memory structures: its
// registry, topic index, presence watchers and history; and the topic listing of GET /api/topics.
import type { EngineInspection, Session, TopicView } from './engine.js';
import type { Position } from './resume.js';
import { isWildcard } from '../protocol/topic.js';
import type { Presence } from './presence.js';
import type { Registry } from './registry.js';
import type { TopicIndex } from './topic-index.js';

/** The inspection of an in-memory engine's structures. */
export class LocalInspection<S extends Session> implements EngineInspection<S> {
  constructor(
    private readonly parts: { registry: Registry<S>; index: TopicIndex<S>; presence: Presence<S>; history: { readonly topicCount: number; readonly namesBytes: number } },
  ) {}

  clientCount(): number {
    return this.parts.registry.size;
  }

  clients(): S[] {
    return [...this.parts.registry.values()];
  }

  findClient(idOrName: string): S | undefined {
    return this.parts.registry.find(idOrName);
  }

  isConnected(session: S): boolean {
    return this.parts.registry.has(session);
  }

  holders(filter: string): S[] {
    return [...this.parts.index.subscribersOf(filter)];
  }

  reached(topic: string): S[] {
    return [...this.parts.index.match(topic)];
  }

  filters(): string[] {
    return [...this.parts.index.filters()].map(([filter]) => filter);
  }

  watcherCount(filter: string): number {
    return this.parts.presence.watchers(filter).size;
  }

  historyTopicCount(): number {
    return this.parts.history.topicCount;
  }

  historyNamesBytes(): number {
    return this.parts.history.namesBytes;
  }
}

/** Known topics (with history) and filters someone holds, with subscribers and positions (GET /api/topics). */
export function listTopics<S extends Session>(
  parts: { registry: Registry<S>; index: TopicIndex<S>; history: { topics(): Iterable<[string, Position]>; position(topic: string): Position | undefined } },
  limit: number,
): { total: number; topics: TopicView[] } {
  const { registry, index, history } = parts;
  const seen = new Set<string>();
  for (const [topic] of history.topics()) seen.add(topic);
  for (const link of registry.values()) for (const f of link.subscriptions) seen.add(f);
  const topics: TopicView[] = [];
  for (const topic of seen) {
    if (topics.length >= limit) break;
    const wildcard = isWildcard(topic);
    const position = wildcard ? undefined : history.position(topic);
    topics.push({
      topic,
      wildcard,
      // A concrete topic: connections a publish would reach (without filling the publish cache). A filter: its holders.
      subscribers: wildcard ? index.subscribersOf(topic).size : index.countMatches(topic),
      lastSeq: wildcard ? null : (position?.seq ?? 0),
      epoch: position?.epoch ?? null,
    });
  }
  return { total: seen.size, topics };
}

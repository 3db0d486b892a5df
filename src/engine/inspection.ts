// LocalInspection: an engine's inspection (EngineInspection in engine.ts) read off the in-memory structures: its
// registry, topic index, presence watchers and history.
import type { EngineInspection, Session } from './engine.js';
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

// TopicIndex: a trie of filter segments with MQTT wildcards; match() answers each subscriber once.
// Pure: no sockets, no timers. Match results are cached per topic; a sub or unsub drops only the entries it can change,
// found by walking the cached topics' own tree (TopicTree), so its cost is what it can change, not the cache's size.
import { isWildcard } from '../protocol/topic.js';
import { TopicTree } from './topic-tree.js';

interface TrieNode<T> {
  children: Map<string, TrieNode<T>>;
  subscribers: Set<T>;
}

const MAX_CACHED_TOPICS = 10_000;

function node<T>(): TrieNode<T> {
  return { children: new Map(), subscribers: new Set() };
}

export class TopicIndex<T> {
  private readonly root: TrieNode<T> = node();
  private readonly byFilter = new Map<string, Set<T>>();
  private readonly cache = new Map<string, readonly T[]>();
  /** The cache's topics by segment: what a filter can change is found by walking it. */
  private readonly cached = new TopicTree();
  /** Cache nodes the last add or remove looked at to invalidate (its cost, charged to the client that caused it). */
  lastInvalidationWork = 0;
  /** Told when a filter gets its first subscriber (true) or loses its last (false): the cluster's interest routing. */
  onFilter: ((filter: string, held: boolean) => void) | undefined;

  /** Adds `subscriber` under `filter`; returns false when it was already there. */
  add(filter: string, subscriber: T): boolean {
    this.lastInvalidationWork = 0;
    let n = this.root;
    for (const segment of filter.split('/')) {
      let child = n.children.get(segment);
      if (!child) n.children.set(segment, (child = node()));
      n = child;
    }
    if (n.subscribers.has(subscriber)) return false;
    n.subscribers.add(subscriber);
    let set = this.byFilter.get(filter);
    if (!set) {
      this.byFilter.set(filter, (set = new Set()));
      this.onFilter?.(filter, true);
    }
    set.add(subscriber);
    this.invalidate(filter);
    return true;
  }

  /** Removes `subscriber` from `filter`; returns false when it was not there. Prunes empty branches. */
  remove(filter: string, subscriber: T): boolean {
    this.lastInvalidationWork = 0;
    const segments = filter.split('/');
    const path: TrieNode<T>[] = [this.root];
    let n = this.root;
    for (const segment of segments) {
      const child = n.children.get(segment);
      if (!child) return false;
      path.push(child);
      n = child;
    }
    if (!n.subscribers.delete(subscriber)) return false;
    const set = this.byFilter.get(filter)!;
    set.delete(subscriber);
    if (set.size === 0) {
      this.byFilter.delete(filter);
      this.onFilter?.(filter, false);
    }
    for (let i = segments.length; i > 0; i--) {
      const cur = path[i]!;
      if (cur.subscribers.size > 0 || cur.children.size > 0) break;
      path[i - 1]!.children.delete(segments[i - 1]!);
    }
    this.invalidate(filter);
    return true;
  }

  /** Every subscriber with at least one filter matching concrete `topic`, each once, in a stable order. */
  match(topic: string): readonly T[] {
    const cached = this.cache.get(topic);
    if (cached) return cached;
    const found = new Set<T>();
    const segments = topic.split('/');
    this.visit(this.root, segments, 0, found);
    const result = [...found];
    if (this.cache.size >= MAX_CACHED_TOPICS) {
      // The oldest entry makes room (a Map iterates in insertion order): the recent ones stay.
      const oldest = this.cache.keys().next().value!;
      this.cache.delete(oldest);
      this.cached.delete(oldest);
    }
    this.cache.set(topic, result);
    this.cached.add(topic, segments);
    return result;
  }

  /** How many subscribers a publish to `topic` would reach, without filling the publish cache (admin views). */
  countMatches(topic: string): number {
    const cached = this.cache.get(topic);
    if (cached) return cached.length;
    const found = new Set<T>();
    this.visit(this.root, topic.split('/'), 0, found);
    return found.size;
  }

  /** Subscribers holding exactly `filter`. */
  subscribersOf(filter: string): ReadonlySet<T> {
    return this.byFilter.get(filter) ?? EMPTY;
  }

  /** Every filter with at least one subscriber, and how many. */
  *filters(): IterableIterator<[filter: string, subscribers: number]> {
    for (const [filter, set] of this.byFilter) yield [filter, set.size];
  }

  get filterCount(): number {
    return this.byFilter.size;
  }

  private visit(n: TrieNode<T>, segments: string[], i: number, found: Set<T>): void {
    const hash = n.children.get('#');
    if (hash) for (const s of hash.subscribers) found.add(s);
    if (i === segments.length) {
      for (const s of n.subscribers) found.add(s);
      return;
    }
    const exact = n.children.get(segments[i]!);
    if (exact) this.visit(exact, segments, i + 1, found);
    const plus = n.children.get('+');
    if (plus) this.visit(plus, segments, i + 1, found);
  }

  /**
   * Drops the cached matches `filter` can change: one entry for a concrete filter; for a wildcard, the cached topics
   * it matches, walked in the cache's tree (`+` branches, `#` drops a subtree), never a scan of every entry.
   */
  private invalidate(filter: string): void {
    this.lastInvalidationWork = 0;
    if (this.cache.size === 0) return;
    if (!isWildcard(filter)) {
      if (this.cache.delete(filter)) this.cached.delete(filter);
      this.lastInvalidationWork = 1;
      return;
    }
    this.lastInvalidationWork = this.cached.removeMatching(filter, (topic) => this.cache.delete(topic));
  }
}

const EMPTY: ReadonlySet<never> = new Set();

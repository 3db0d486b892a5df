// TopicTree: a set of concrete topics kept as a tree of their segments, so the topics a filter matches are found by
// walking the filter (`+` takes every branch of its level, `#` a whole subtree), never by testing every topic. Caches
// keyed by topic use it to drop exactly what a subscription change can affect. A topic's unshared tail is kept in one
// node, not one node a segment: a long unique topic costs one node. Pure: no sockets, no timers.

interface TreeNode {
  children: Map<string, TreeNode> | undefined;
  /** The member ending here, or (with `tail`) the one member below this node. */
  topic: string | undefined;
  /** The segments of `topic` below this node, `a/b`, when this node holds it compressed (then it has no children). */
  tail: string | undefined;
}

const node = (topic?: string, tail?: string): TreeNode => ({ children: undefined, topic, tail });

export class TopicTree {
  private root = node();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds concrete `topic` (its `segments` when the caller has split it already); false when it was there. */
  add(topic: string, segments: readonly string[] = topic.split('/')): boolean {
    let n = this.root;
    for (let i = 0; i < segments.length; i++) {
      if (n.tail !== undefined) this.expand(n);
      const s = segments[i]!;
      const child = n.children?.get(s);
      if (!child) {
        // Nothing shares the rest: it goes into one node.
        (n.children ??= new Map()).set(s, node(topic, i + 1 < segments.length ? segments.slice(i + 1).join('/') : undefined));
        this.count++;
        return true;
      }
      n = child;
    }
    if (n.tail !== undefined) this.expand(n);
    if (n.topic !== undefined) return false;
    n.topic = topic;
    this.count++;
    return true;
  }

  /** Removes concrete `topic`; false when it was not there. Prunes the branch it leaves empty. */
  delete(topic: string): boolean {
    const segments = topic.split('/');
    const path: TreeNode[] = [this.root];
    let n = this.root;
    for (let i = 0; i < segments.length && n.tail === undefined; i++) {
      const child = n.children?.get(segments[i]!);
      if (!child) return false;
      path.push((n = child));
    }
    if (n.topic !== topic) return false;
    n.topic = n.tail = undefined;
    this.count--;
    for (let i = path.length - 1; i > 0 && isEmpty(path[i]!); i--) path[i - 1]!.children!.delete(segments[i - 1]!);
    return true;
  }

  /**
   * Removes every member `filter` matches, calling `removed` for each. Returns the nodes visited: the work done,
   * which is what the topics sharing the filter's literal prefix cost, not the size of the set.
   */
  removeMatching(filter: string, removed: (topic: string) => void): number {
    const work = { nodes: 0 };
    this.sweep(this.root, filter.split('/'), 0, removed, work);
    return work.nodes;
  }

  clear(): void {
    this.root = node();
    this.count = 0;
  }

  /** A compressed member moves one level down, so a topic sharing its next segment can branch off there. */
  private expand(n: TreeNode): void {
    const tail = n.tail!;
    const slash = tail.indexOf('/');
    const first = slash < 0 ? tail : tail.slice(0, slash);
    n.children = new Map([[first, node(n.topic, slash < 0 ? undefined : tail.slice(slash + 1))]]);
    n.topic = n.tail = undefined;
  }

  private sweep(n: TreeNode, segments: readonly string[], i: number, removed: (topic: string) => void, work: { nodes: number }): void {
    work.nodes++;
    if (n.tail !== undefined) {
      if (tailMatches(segments, i, n.tail)) this.take(n, removed);
      return;
    }
    if (i === segments.length) return this.take(n, removed);
    const s = segments[i]!;
    if (s === '#') return this.takeAll(n, removed, work); // `a/#` matches `a` itself and everything under it
    if (!n.children) return;
    if (s === '+') {
      for (const [key, child] of n.children) {
        this.sweep(child, segments, i + 1, removed, work);
        if (isEmpty(child)) n.children.delete(key);
      }
      return;
    }
    const child = n.children.get(s);
    if (!child) return;
    this.sweep(child, segments, i + 1, removed, work);
    if (isEmpty(child)) n.children.delete(s);
  }

  private take(n: TreeNode, removed: (topic: string) => void): void {
    if (n.topic === undefined) return;
    const topic = n.topic;
    n.topic = n.tail = undefined;
    this.count--;
    removed(topic);
  }

  private takeAll(n: TreeNode, removed: (topic: string) => void, work: { nodes: number }): void {
    this.take(n, removed);
    if (!n.children) return;
    for (const child of n.children.values()) {
      work.nodes++;
      this.takeAll(child, removed, work);
    }
    n.children = undefined;
  }
}

function isEmpty(n: TreeNode): boolean {
  return n.topic === undefined && (n.children === undefined || n.children.size === 0);
}

/** Whether filter segments `segments[i..]` match `tail` (one or more topic segments), read in place, unsplit. */
function tailMatches(segments: readonly string[], i: number, tail: string): boolean {
  let at = 0; // start of the tail's next segment; past its end once every segment is consumed
  for (let k = i; k < segments.length; k++) {
    const f = segments[k]!;
    if (f === '#') return true;
    if (at > tail.length) return false; // the filter is longer than the topic
    const slash = tail.indexOf('/', at);
    const end = slash < 0 ? tail.length : slash;
    if (f !== '+' && (end - at !== f.length || !tail.startsWith(f, at))) return false;
    at = end + 1;
  }
  return at > tail.length;
}

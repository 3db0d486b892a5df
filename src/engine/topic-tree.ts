// TopicTree: a set of concrete topics kept as a tree of their segments, so the topics a filter matches are found by
// walking the filter (`+` takes every branch of its level, `#` a whole subtree), never by testing every topic. Caches
// keyed by topic use it to drop exactly what a subscription change can affect. Pure: no sockets, no timers.

interface TreeNode {
  children: Map<string, TreeNode> | undefined;
  /** The topic ending here, when it is a member. */
  topic: string | undefined;
}

const leaf = (): TreeNode => ({ children: undefined, topic: undefined });

export class TopicTree {
  private root = leaf();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds concrete `topic` (its `segments` when the caller has split it already); false when it was there. */
  add(topic: string, segments: readonly string[] = topic.split('/')): boolean {
    let n = this.root;
    for (const s of segments) {
      n.children ??= new Map();
      let child = n.children.get(s);
      if (!child) n.children.set(s, (child = leaf()));
      n = child;
    }
    if (n.topic !== undefined) return false;
    n.topic = topic;
    this.count++;
    return true;
  }

  /** Removes concrete `topic`; false when it was not there. Prunes the branch it leaves empty. */
  delete(topic: string): boolean {
    const segments = topic.split('/');
    const path: TreeNode[] = [this.root];
    for (const s of segments) {
      const child = path[path.length - 1]!.children?.get(s);
      if (!child) return false;
      path.push(child);
    }
    const n = path[path.length - 1]!;
    if (n.topic === undefined) return false;
    n.topic = undefined;
    this.count--;
    for (let i = segments.length; i > 0 && isEmpty(path[i]!); i--) path[i - 1]!.children!.delete(segments[i - 1]!);
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
    this.root = leaf();
    this.count = 0;
  }

  private sweep(n: TreeNode, segments: readonly string[], i: number, removed: (topic: string) => void, work: { nodes: number }): void {
    work.nodes++;
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
    n.topic = undefined;
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

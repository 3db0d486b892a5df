// Presence: which clients watch join/leave/rename events of a filter (sub with presence:true). Pure.
export class Presence<T> {
  private readonly watchersByFilter = new Map<string, Set<T>>();

  watch(filter: string, watcher: T): void {
    let set = this.watchersByFilter.get(filter);
    if (!set) this.watchersByFilter.set(filter, (set = new Set()));
    set.add(watcher);
  }

  unwatch(filter: string, watcher: T): void {
    const set = this.watchersByFilter.get(filter);
    if (!set) return;
    set.delete(watcher);
    if (set.size === 0) this.watchersByFilter.delete(filter);
  }

  watchers(filter: string): ReadonlySet<T> {
    return this.watchersByFilter.get(filter) ?? EMPTY;
  }
}

const EMPTY: ReadonlySet<never> = new Set();

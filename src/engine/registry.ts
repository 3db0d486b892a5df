// Registry: who is connected, by id and by unique name. Pure: no sockets, no timers.
export interface Named {
  readonly id: string;
  name: string;
}

export class Registry<T extends Named> {
  private readonly byId = new Map<string, T>();
  private readonly byName = new Map<string, T>();
  private counter = 0;

  /** A fresh client id; ids look like `c1`, `c2`, … and are never reused within a process. */
  nextId(): string {
    return `c${++this.counter}`;
  }

  get size(): number {
    return this.byId.size;
  }

  isNameFree(name: string): boolean {
    return !this.byName.has(name);
  }

  /** Whether `entry` may have `name`: nobody holds it, or `entry` itself does. */
  isNameFreeFor(name: string, entry: T): boolean {
    const holder = this.byName.get(name);
    return holder === undefined || holder === entry;
  }

  /** Adds `entry` under its id and name; returns false (and adds nothing) when the name is taken. */
  add(entry: T): boolean {
    if (this.byName.has(entry.name)) return false;
    this.byId.set(entry.id, entry);
    this.byName.set(entry.name, entry);
    return true;
  }

  remove(entry: T): boolean {
    if (this.byId.get(entry.id) !== entry) return false;
    this.byId.delete(entry.id);
    if (this.byName.get(entry.name) === entry) this.byName.delete(entry.name);
    return true;
  }

  has(entry: T): boolean {
    return this.byId.get(entry.id) === entry;
  }

  /** Looks a client up by id first, then by name. */
  find(idOrName: string): T | undefined {
    return this.byId.get(idOrName) ?? this.byName.get(idOrName);
  }

  /** Renames `entry`; returns false when another client holds `name`. Renaming to one's own name succeeds. */
  rename(entry: T, name: string): boolean {
    const holder = this.byName.get(name);
    if (holder && holder !== entry) return false;
    this.byName.delete(entry.name);
    entry.name = name;
    this.byName.set(name, entry);
    return true;
  }

  values(): IterableIterator<T> {
    return this.byId.values();
  }
}

// HookCache: hook answers the backend gave a lifetime (`cacheMs`), so a reconnect storm asks the backend once per
// identity, not once per connection. Bounded in entries and in bytes; least recently used go first; an entry is
// never served after its lifetime.
export class HookCache {
  private readonly entries = new Map<string, { value: Record<string, unknown>; expires: number; bytes: number }>();
  private bytes = 0;
  hits = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number = 16 * 1024 * 1024,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): Record<string, unknown> | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expires <= this.now()) {
      this.bytes -= entry.bytes;
      return undefined;
    }
    this.entries.set(key, entry); // most recently used last
    this.hits++;
    return entry.value;
  }

  /** Keeps `value` for `ms`; `bytes` is the size of its JSON (the answer as it came). */
  set(key: string, value: Record<string, unknown>, ms: number, bytes: number): void {
    if (this.maxEntries === 0 || ms <= 0) return;
    const size = bytes + key.length * 2;
    if (size > this.maxBytes) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.bytes;
    }
    this.entries.set(key, { value, expires: this.now() + ms, bytes: size });
    this.bytes += size;
    for (const [k, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.bytes;
    }
  }
}

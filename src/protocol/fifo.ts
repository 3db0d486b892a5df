// Fifo: first in, first out, over an array and a head index, so taking from the head moves nothing (Array#shift
// copies the rest). A taken slot is cleared, so its item can be collected; the array is compacted once its cleared
// head is 1024 slots or more and at least half of it, so a long-lived queue holds at most twice what it has (or
// 1024 slots more). An empty queue holds no array of its own (an idle connection's queues cost one small object each).

/** Every empty queue's array: never pushed to (push swaps in an array of its own). */
const EMPTY: never[] = [];

/** Cleared slots at the head tolerated before compacting (and never more than the live ones). */
const COMPACT_AT = 1024;

export class Fifo<T> {
  private items: T[] = EMPTY;
  private head = 0;

  /** Items queued. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Slots the array holds, cleared ones included: under length + max(length, 1024), whatever came and went. */
  get slots(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.items === EMPTY) this.items = [item];
    else this.items.push(item);
  }

  /** The head; undefined when empty. */
  peek(): T | undefined {
    return this.items[this.head];
  }

  /** Takes the head; undefined when empty. */
  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.items[this.head++] = undefined as T; // let it be collected
    if (this.head === this.items.length) this.clear();
    else if (this.head >= COMPACT_AT && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** The first `n` items (all of them when fewer), head first, as a new array; the queue keeps them. */
  slice(n: number): T[] {
    return this.items.slice(this.head, this.head + n);
  }

  /** The items, head first. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!;
  }

  clear(): void {
    this.items = EMPTY;
    this.head = 0;
  }
}

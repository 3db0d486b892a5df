// SharedClock: the clock of the connection actors' systems (xstate's public `createActor(…, { clock })` option). Every
// online connection keeps a delayed transition pending (its heartbeat and idle check); with xstate's default clock each is a
// Node `Timeout` (~150 B with its numbers). Here all of them share one Node timer, armed for the earliest, and each
// pending delay is a small entry in a binary heap (~56 B). xstate still schedules, cancels and relays as before: only
// who counts the milliseconds changes.
import type { ActorOptions, AnyActorLogic } from 'xstate';

/** xstate's clock interface (the `clock` actor option; not exported by name). */
export type Clock = NonNullable<ActorOptions<AnyActorLogic>['clock']>;

/** One pending delay; `fn` is null once it fired or was cleared (it stays in the heap until popped or compacted). */
class Entry {
  constructor(
    public fn: (() => void) | null,
    /** When it is due, in whole ms of the clock's time base. */
    readonly due: number,
    /** Order of scheduling: entries due at the same ms fire in the order they were set, as Node's timers do. */
    readonly seq: number,
  ) {}
}

function rethrow(error: unknown): void {
  process.nextTick(() => {
    throw error;
  });
}

const before = (a: Entry, b: Entry): boolean => a.due < b.due || (a.due === b.due && a.seq < b.seq);

export class SharedClock implements Clock {
  private heap: Entry[] = [];
  /** Entries not cleared or fired. */
  private live = 0;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The due time the Node timer is armed for (Infinity: not armed). */
  private armedFor = Infinity;
  private readonly run = (): void => this.fire();

  /**
   * `now`: a monotonic time in ms (default performance.now, as Node's timers are monotonic). `report`: what happens to
   * an error a callback throws (default: thrown again on its own tick, an uncaught exception as in a Node timer).
   */
  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly report: (error: unknown) => void = rethrow,
  ) {}

  /** Delays pending (for tests and inspection). */
  get pending(): number {
    return this.live;
  }

  setTimeout(fn: (...args: unknown[]) => void, timeout: number): Entry {
    // Like Node's setTimeout: at least 1 ms, never before its time.
    const entry = new Entry(fn as () => void, Math.ceil(this.now() + Math.max(1, timeout)), this.seq++);
    this.push(entry);
    this.live++;
    if (entry.due < this.armedFor) this.arm(entry.due);
    return entry;
  }

  clearTimeout(id: unknown): void {
    if (!(id instanceof Entry) || id.fn === null) return;
    id.fn = null;
    this.live--;
    if (this.live === 0) {
      this.heap = [];
      this.disarm();
    } else if (this.heap.length >= 1024 && this.live * 2 < this.heap.length) {
      this.compact();
    }
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = this.now();
    const errors: unknown[] = [];
    // Entries set while firing are due at least 1 ms after `now`: they wait for the next round, as with Node's timers.
    while (this.heap.length > 0 && this.heap[0]!.due <= now) {
      const entry = this.pop();
      const fn = entry.fn;
      if (fn === null) continue;
      entry.fn = null;
      this.live--;
      try {
        fn();
      } catch (error) {
        errors.push(error);
      }
    }
    this.rearm();
    // The others still ran; then each error goes where a Node timer's would.
    for (const error of errors) this.report(error);
  }

  private rearm(): void {
    while (this.heap.length > 0 && this.heap[0]!.fn === null) this.pop();
    if (this.heap.length === 0) {
      this.heap = [];
      this.disarm();
      return;
    }
    const due = this.heap[0]!.due;
    if (due !== this.armedFor) this.arm(due);
  }

  private arm(due: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedFor = due;
    this.timer = setTimeout(this.run, Math.max(1, due - this.now()));
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  /** Drops cleared entries (more than half the heap): the heap stays bounded by twice the pending delays. */
  private compact(): void {
    const kept = this.heap.filter((e) => e.fn !== null);
    kept.sort((a, b) => (before(a, b) ? -1 : 1)); // a sorted array is a valid heap
    this.heap = kept;
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    let i = heap.length;
    heap.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(entry, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  private pop(): Entry {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    const n = heap.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(heap[r]!, heap[l]!) ? r : l;
      if (!before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

// Emitter: typed listeners without Node's EventEmitter or the DOM's EventTarget, so one build runs in both.

export type Listener<T> = (value: T) => void;

/** A `once` wrapper → the listener it wraps. */
const onceOf = new WeakMap<Listener<never>, Listener<never>>();

export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    this.listenerAdded(event);
    return () => this.off(event, listener);
  }

  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const wrapper = (value: Events[K]) => {
      off();
      listener(value);
    };
    onceOf.set(wrapper as Listener<never>, listener as Listener<never>);
    const off = this.on(event, wrapper);
    return off;
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const set = this.listeners.get(event);
    if (!set || set.delete(listener as Listener<never>)) return;
    // `off(event, fn)` removes a `once(event, fn)` too (as Node's EventEmitter and the DOM do).
    for (const l of set) if (onceOf.get(l) === listener) return void set.delete(l);
  }

  /** How many listeners `event` has now. */
  listenerCount(event: keyof Events): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  /** Called after a listener was added (a subscription hands its buffered messages to its first listener). */
  protected listenerAdded(_event: keyof Events): void {}

  protected emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(value);
      } catch (err) {
        // A throwing listener must not break delivery to the others, nor the client's frame loop.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

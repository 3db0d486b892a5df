// MessageStream: one `for await` over a subscription, with its own bounded buffer: a message waits in it until the
// loop asks for the next, and one that would overflow it is refused (the subscription then fails: an iterator that
// fell too far behind). What is buffered is still read after the stream ended or failed.
import type { SwitchboardError } from './errors.js';

export class MessageStream<M> implements AsyncIterator<M> {
  private readonly buffer: M[] = [];
  private waiter: { resolve: (r: IteratorResult<M>) => void; reject: (e: unknown) => void } | undefined;
  private done = false;
  private failure: SwitchboardError | undefined;

  constructor(
    private readonly bound: number,
    private readonly detach: () => void,
    /** A message handed to the app by this iterator. */
    private readonly taken: (m: M) => void,
  ) {}

  /** False when the buffer is full (the message is not taken). */
  push(m: M): boolean {
    if (this.done) return true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      this.taken(m);
      w.resolve({ value: m, done: false });
      return true;
    }
    if (this.buffer.length >= this.bound) return false;
    this.buffer.push(m);
    return true;
  }

  /** What is buffered is still read; then the iteration ends. */
  end(): void {
    this.done = true;
    this.settleWaiter();
  }

  /** What is buffered is still read; then `next()` rejects with `err`. */
  fail(err: SwitchboardError): void {
    if (this.done) return;
    this.failure = err;
    this.done = true;
    this.settleWaiter();
  }

  next(): Promise<IteratorResult<M>> {
    const m = this.buffer.shift();
    if (m) {
      this.taken(m);
      return Promise.resolve({ value: m, done: false });
    }
    if (this.failure) {
      const err = this.failure;
      this.failure = undefined;
      return Promise.reject(err);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  return(): Promise<IteratorResult<M>> {
    this.done = true;
    this.failure = undefined;
    this.buffer.length = 0;
    this.detach();
    this.settleWaiter();
    return Promise.resolve({ value: undefined, done: true });
  }

  private settleWaiter(): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = undefined;
    if (this.failure) {
      const err = this.failure;
      this.failure = undefined;
      w.reject(err);
    } else w.resolve({ value: undefined, done: true });
  }
}

// HookGate: one connection's requests in the order it sent them, while some wait for the application backend.
// A request that needs a hook starts its call at once (calls of one connection run side by side), but every
// request is applied only after all the requests sent before it: a publish never overtakes an earlier one,
// whatever each call's latency. Bounded per connection (--hook-queue and bytes): over it the request is refused
// (`rate_limited`) and never queued. Connections without hooks pending pay one length check per frame.
import { ProtocolError, type FrameId } from '../protocol/errors.js';
import { Fifo } from '../protocol/fifo.js';
import type { ClientFrame } from '../protocol/frames.js';

/** The reader's side: what a frame is when served, and the asynchronous work some frames need first. */
export interface GateHost {
  /** Starts the work `frame` waits for (a hook call, a token check), or undefined when it needs none. */
  start(frame: ClientFrame): Promise<unknown> | undefined;
  /** Serves a frame that needed no work. */
  serve(frame: ClientFrame | ProtocolError): void;
  /** Applies a frame whose work finished with `result`. */
  finish(frame: ClientFrame, result: unknown): void;
  /** Refuses a frame (over the gate's bound). */
  reject(err: ProtocolError): void;
}

interface Entry {
  frame: ClientFrame | ProtocolError;
  bytes: number;
  /** Set when its work finished (or at once when it had none). */
  done: boolean;
  waited: boolean;
  result: unknown;
}

/** Bytes of requests one connection may have waiting behind its hook calls. */
export const GATE_MAX_BYTES = 1024 * 1024;

export class HookGate {
  private readonly queue = new Fifo<Entry>();
  private bytes = 0;
  /** Set when the connection is gone: results still arriving are dropped. */
  private closed = false;

  constructor(
    private readonly host: GateHost,
    private readonly maxEntries: number,
    private readonly maxBytes = GATE_MAX_BYTES,
  ) {}

  /** Requests waiting (those whose work runs and those behind them). */
  get waiting(): number {
    return this.queue.length;
  }

  /** The ids of the requests waiting: not served yet (once the connection is gone, never). */
  waitingIds(): FrameId[] {
    const ids: FrameId[] = [];
    for (const entry of this.queue) {
      const id = idOf(entry.frame);
      if (id !== undefined) ids.push(id);
    }
    return ids;
  }

  /** Takes a frame in arrival order: served now when nothing waits and it needs no work, else queued. */
  take(frame: ClientFrame | ProtocolError, bytes: number): void {
    if (this.waiting > 0 && (this.waiting >= this.maxEntries || this.bytes + bytes > this.maxBytes)) {
      return this.host.reject(new ProtocolError('rate_limited', `too many requests waiting for the application backend (at most ${this.maxEntries}); slow down`, idOf(frame)));
    }
    const work = frame instanceof ProtocolError ? undefined : this.host.start(frame);
    if (work === undefined && this.waiting === 0) return this.host.serve(frame);
    const entry: Entry = { frame, bytes, done: work === undefined, waited: work !== undefined, result: undefined };
    this.queue.push(entry);
    this.bytes += bytes;
    work?.then(
      (result) => {
        entry.result = result;
        entry.done = true;
        this.drain();
      },
      (err: unknown) => {
        entry.result = err instanceof ProtocolError ? err : new ProtocolError('internal', 'internal error', idOf(frame));
        entry.done = true;
        this.drain();
      },
    );
  }

  /** Applies every finished request at the head, in order. */
  private drain(): void {
    while (!this.closed && this.queue.peek()?.done) {
      const entry = this.queue.shift()!;
      this.bytes -= entry.bytes;
      if (entry.waited) this.host.finish(entry.frame as ClientFrame, entry.result);
      else this.host.serve(entry.frame);
    }
  }

  /** The connection is gone: nothing more is applied. */
  close(): void {
    this.closed = true;
    this.queue.clear();
    this.bytes = 0;
  }
}

function idOf(frame: ClientFrame | ProtocolError): FrameId | undefined {
  return frame.id;
}

// PendingRequests: requests in flight on one connection, matched to their reply by `id`, each with its timeout.
import { SwitchboardError } from './errors.js';
import type { AckFrame, ErrorFrame, FrameId, PongFrame } from './wire.js';

/** Called synchronously when the reply is read, before the next frame: a sub's ack must take effect before its replay. */
export interface ReplyHandlers {
  ok: (reply: AckFrame | PongFrame) => void;
  fail: (err: SwitchboardError) => void;
}

interface Pending extends ReplyHandlers {
  op: string;
  timer: ReturnType<typeof setTimeout>;
}

export class PendingRequests {
  private readonly pending = new Map<FrameId, Pending>();
  private nextId = 1;

  constructor(private readonly timeoutMs: () => number) {}

  /** A fresh id whose reply goes to `handlers`; `fail` gets `timeout` unless a reply comes first (`timeoutMs`: this request's own). */
  expect(op: string, handlers: ReplyHandlers, timeoutMs?: number): number {
    const id = this.nextId++;
    const ms = timeoutMs ?? this.timeoutMs();
    const timer = setTimeout(() => {
      this.pending.delete(id);
      handlers.fail(new SwitchboardError('timeout', `no reply to ${op} within ${ms} ms`));
    }, ms);
    this.pending.set(id, { op, ...handlers, timer });
    return id;
  }

  /** A fresh id and the promise of its reply. */
  open(op: string, timeoutMs?: number): { id: number; reply: Promise<AckFrame | PongFrame> } {
    let id = 0;
    const reply = new Promise<AckFrame | PongFrame>((ok, fail) => (id = this.expect(op, { ok, fail }, timeoutMs)));
    return { id, reply };
  }

  /** Settles the request a reply belongs to; false when no request waits for it (a stray or late reply). */
  settle(frame: AckFrame | PongFrame | ErrorFrame): boolean {
    if (frame.id === undefined) return false;
    const p = this.pending.get(frame.id);
    if (!p) return false;
    this.pending.delete(frame.id);
    clearTimeout(p.timer);
    if (frame.op === 'error') p.fail(new SwitchboardError(frame.code, frame.message));
    else p.ok(frame);
    return true;
  }

  /** Fails one request before anything was sent for it (its frame could not be encoded). */
  cancel(id: FrameId, err: SwitchboardError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.fail(err);
  }

  /** Rejects every request in flight (the connection they were sent on is gone). */
  failAll(code: 'disconnected' | 'closed', message: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.fail(new SwitchboardError(code, `${p.op}: ${message}`));
    }
  }

  get size(): number {
    return this.pending.size;
  }
}

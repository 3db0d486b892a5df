// Mailbox: the writer role. A bounded queue of encoded frames, flushed to the socket at most once per
// event-loop turn (one write for a whole burst), paused while the socket is congested.
// Nothing here ever waits: a full mailbox (over its message or its byte bound) is a slow consumer (close, or
// drop-oldest by configuration). Directs queued here have their own share, so senders cannot fill it.
import type { Outgoing } from '../protocol/outgoing.js';
import type { ServerFrame, Transport } from '../protocol/frames.js';

export type SlowConsumerPolicy = 'close' | 'drop-oldest';

/** The transport adapter's face towards the writer and the connection machine. */
export interface Wire {
  readonly transport: Transport;
  /** Whether ping() expects a pong back (WebSocket) or is a no-op (TCP relies on keepalive). */
  readonly canPing: boolean;
  /** The bytes of `out` on this transport. */
  encode(out: Outgoing): Buffer;
  /** Writes one chunk; false when the socket is congested and the caller should wait for onDrain. */
  write(chunk: Buffer): boolean;
  onDrain(listener: () => void): void;
  /** True when encode(out) depends on `out` alone, so mailboxes holding the same frames may share one chunk. */
  readonly sharedEncoding?: boolean;
  /**
   * With sharedEncoding, optionally: the size of encode(out) and a writer of those bytes into a buffer at `at`
   * (returning where they end), so a turn's frames are written into one chunk, not each into its own buffer first.
   */
  encodedSize?(out: Outgoing): number;
  encodeInto?(out: Outgoing, buf: Buffer, at: number): number;
  /** Bytes accepted by write() but not yet handed to the kernel (bounded by the mailbox and backpressure). */
  readonly bufferedBytes: number;
  ping(): void;
  /** Graceful close with a protocol close code (WebSocket close frame, or end of the TCP stream). */
  close(code: number, reason: string): void;
  /** Immediate teardown, for peers that do not finish the close handshake. */
  terminate(): void;
  /** The frames discard() drops unwritten (a transport that resumes from positions moves them back: MQTT). */
  unsent?(queue: readonly Outgoing[]): void;
  /** A frame for this client, as it is sent (before the mailbox takes it, and even when the mailbox refuses it). */
  sending?(frame: ServerFrame): void;
  /**
   * The server changed the client's filters on its behalf (the server API's subscribe, unsubscribe): a transport that
   * keeps a record of them with the client (SSE's cursor) brings it up to date; no request of the client's did.
   */
  filtersChangedByServer?(): void;
}

const dirty: Mailbox[] = [];
let flushScheduled = false;

// A burst queues the same frames, in the same order, in every subscriber's mailbox: concatenate them once per turn.
let lastBatch: { encode: Wire['encode']; items: Outgoing[]; chunk: Buffer } | null = null;

function sharedChunk(wire: Wire, queue: Outgoing[], head: number, n: number): Buffer {
  const last = lastBatch;
  if (last && last.encode === wire.encode && last.items.length === n) {
    let same = true;
    for (let i = 0; i < n && same; i++) same = last.items[i] === queue[head + i];
    if (same) return last.chunk;
  }
  const items = queue.slice(head, head + n);
  let chunk: Buffer;
  if (wire.encodeInto !== undefined && wire.encodedSize !== undefined) {
    let size = 0;
    for (let i = 0; i < n; i++) size += wire.encodedSize(items[i]!);
    chunk = Buffer.allocUnsafe(size);
    let at = 0;
    for (let i = 0; i < n; i++) at = wire.encodeInto(items[i]!, chunk, at);
  } else {
    const parts = new Array<Buffer>(n);
    for (let i = 0; i < n; i++) parts[i] = wire.encode(items[i]!);
    chunk = Buffer.concat(parts);
  }
  lastBatch = { encode: wire.encode, items, chunk };
  return chunk;
}

function flushDirty(): void {
  flushScheduled = false;
  // Mailboxes marked during this loop are flushed on the next turn, keeping one write per turn.
  const batch = dirty.splice(0, dirty.length);
  for (const m of batch) {
    // A throwing transport fails its own connection, never the other mailboxes' flush or the event loop.
    try {
      m.flush();
    } catch (error) {
      m.fault(error);
    }
  }
  lastBatch = null;
}

function markDirty(m: Mailbox): void {
  dirty.push(m);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushDirty);
  }
}

export interface MailboxLimits {
  /** Frames queued at most. */
  messages: number;
  /** UTF-8 bytes of queued frames at most (one frame is always accepted into an empty mailbox). */
  bytes: number;
}

/** Who hears of a mailbox's trouble (the Link): an object, so a mailbox holds no closures of its own. */
export interface MailboxOwner {
  /** Overflowed under the close policy: the consumer is slow. */
  slowConsumer(): void;
  /** The wire threw while flushing: the connection is broken. Absent: the error is thrown on. */
  faulted?(error: unknown): void;
}

/** The queue of every empty mailbox: never pushed to (push swaps in an array of its own), so an idle one holds none. */
const NONE: Outgoing[] = [];

export class Mailbox {
  private queue: Outgoing[] = NONE;
  private head = 0;
  /** Bytes of the frames queued (not yet handed to the socket). */
  private queuedBytes = 0;
  /** Directs among them: bytes and count (a recipient's budget for directs, see acceptsDirect). */
  private directBytes = 0;
  private directCount = 0;
  private scheduled = false;
  private congested = false;
  private sealed = false;
  framesOut = 0;
  bytesOut = 0;
  dropped = 0;

  constructor(
    private readonly wire: Wire,
    private readonly limits: MailboxLimits,
    private readonly policy: SlowConsumerPolicy,
    private readonly owner: MailboxOwner,
  ) {}

  /** The most messages it holds before its consumer counts as slow. */
  get capacity(): number {
    return this.limits.messages;
  }

  /** The most bytes it holds before its consumer counts as slow. */
  get byteCapacity(): number {
    return this.limits.bytes;
  }

  get depth(): number {
    return this.queue.length - this.head;
  }

  /** Bytes queued and not yet written. */
  get bytes(): number {
    return this.queuedBytes;
  }

  /**
   * Whether a direct of `bytes` fits the recipient's share for directs: a quarter of both bounds, counting directs
   * queued and not yet written. Over it the sender is told to slow down; the recipient is never closed for directs.
   */
  acceptsDirect(bytes: number): boolean {
    if (this.sealed) return true; // a closing recipient drops it anyway; the sender is not to blame
    // Nor may it overflow the whole mailbox (the recipient's own topics filled the rest): that would close it (or
    // drop its oldest messages) because of a direct.
    if (this.depth > 0 && (this.depth >= this.limits.messages || this.queuedBytes + bytes > this.limits.bytes)) return false;
    return this.directCount < Math.max(1, this.limits.messages >> 2) && this.directBytes + bytes <= Math.max(bytes, this.limits.bytes / 4);
  }

  /** The frame queued last and not yet written: presence coalescing may replace or remove it. */
  get tail(): Outgoing | undefined {
    return this.depth > 0 ? this.queue[this.queue.length - 1] : undefined;
  }

  /** Replaces the tail (see `tail`) by `next`, or removes it when `next` is null. */
  replaceTail(next: Outgoing | null): void {
    const old = this.queue[this.queue.length - 1]!;
    this.forget(old);
    if (next === null) {
      this.queue.pop();
      return;
    }
    this.queue[this.queue.length - 1] = next;
    this.remember(next);
  }

  /** True once the mailbox accepts nothing more (closing, or overflowed under the close policy). */
  get isSealed(): boolean {
    return this.sealed;
  }

  /** Queues `out`; false when it was refused (sealed, or the mailbox overflowed and is now sealed). */
  push(out: Outgoing): boolean {
    if (this.sealed) return false;
    const size = out.bytes;
    while (this.depth > 0 && (this.depth >= this.limits.messages || this.queuedBytes + size > this.limits.bytes)) {
      if (this.policy === 'close') {
        this.discard();
        this.owner.slowConsumer();
        return false;
      }
      this.forget(this.queue[this.head]!);
      this.queue[this.head++] = undefined as unknown as Outgoing; // let the dropped frame be collected
      this.dropped++;
    }
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head); // compact, so a congested drop-oldest queue stays bounded
      this.head = 0;
    }
    if (this.queue === NONE) this.queue = [out];
    else this.queue.push(out);
    this.remember(out);
    if (!this.scheduled && !this.congested) {
      this.scheduled = true;
      markDirty(this);
    }
    return true;
  }

  /** Writes everything queued as one chunk, unless the socket is congested. Called once per turn. */
  flush(): void {
    this.scheduled = false;
    if (this.congested || this.depth === 0) return;
    this.writeAll();
  }

  /** Seals the mailbox and writes what is queued regardless of congestion, then calls `then` (e.g. send the close frame). */
  sealAndFlush(then: () => void): void {
    this.sealed = true;
    if (this.depth > 0) this.writeAll();
    then();
  }

  /** The wire threw during a flush: nothing more can be written, so seal and report it. */
  fault(error: unknown): void {
    this.discard();
    if (!this.owner.faulted) throw error;
    this.owner.faulted(error);
  }

  /** Seals the mailbox and forgets what is queued (slow consumer, dead socket). */
  discard(): void {
    this.sealed = true;
    if (this.depth > 0 && this.wire.unsent) this.wire.unsent(this.queue.slice(this.head));
    this.dropped += this.depth;
    this.queue = NONE;
    this.head = 0;
    this.queuedBytes = this.directBytes = this.directCount = 0;
  }

  private remember(out: Outgoing): void {
    this.queuedBytes += out.bytes;
    if (out.direct) {
      this.directBytes += out.bytes;
      this.directCount++;
    }
  }

  private forget(out: Outgoing): void {
    this.queuedBytes -= out.bytes;
    if (out.direct) {
      this.directBytes -= out.bytes;
      this.directCount--;
    }
  }

  private writeAll(): void {
    const n = this.depth;
    let chunk: Buffer;
    if (n === 1) {
      chunk = this.wire.encode(this.queue[this.head]!);
    } else if (this.wire.sharedEncoding) {
      chunk = sharedChunk(this.wire, this.queue, this.head, n);
    } else {
      const parts = new Array<Buffer>(n);
      for (let i = 0; i < n; i++) parts[i] = this.wire.encode(this.queue[this.head + i]!);
      chunk = Buffer.concat(parts);
    }
    this.queue = NONE;
    this.head = 0;
    this.queuedBytes = this.directBytes = this.directCount = 0;
    this.framesOut += n;
    this.bytesOut += chunk.length;
    if (!this.wire.write(chunk) && !this.sealed) {
      this.congested = true;
      this.wire.onDrain(() => {
        this.congested = false;
        if (this.depth > 0 && !this.scheduled) {
          this.scheduled = true;
          markDirty(this);
        }
      });
    }
  }
}

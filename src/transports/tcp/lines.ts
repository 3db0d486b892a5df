// LineSplitter: the TCP line codec (docs/protocol.md "TCP line protocol"). Pure: byte chunks in, complete
// UTF-8 lines out, whatever the chunking. Lines end in `\n`; a `\r` right before it is dropped.
// Every limit is bounded: at most `limit` + 1 bytes are ever buffered for an unfinished line.

export type LineEvent =
  /** One complete line, without its terminator; `bytes` counts the line and its terminator. */
  | { kind: 'line'; text: string; bytes: number }
  /** A line was not valid UTF-8; it is skipped and splitting goes on (the connection may stay open). */
  | { kind: 'bad_utf8'; bytes: number }
  /** A line passed `limit` bytes; the splitter has stopped and yields nothing more. */
  | { kind: 'too_long'; limit: number };

const LF = 0x0a;
const CR = 0x0d;

export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private stopped = false;
  // fatal: invalid bytes are reported, never silently replaced with U+FFFD.
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  /** `limit` = the most bytes a line may hold, not counting its `\r\n` or `\n`. */
  constructor(readonly limit: number) {}

  /** True after a `too_long`: the stream is no longer in sync and must be closed. */
  get isStopped(): boolean {
    return this.stopped;
  }

  /** Bytes of the unfinished line held so far. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /** Splits one chunk; returns the events it completes, in order. */
  push(chunk: Uint8Array): LineEvent[] {
    const events: LineEvent[] = [];
    if (this.stopped) return events;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(LF, start);
      if (nl === -1) {
        this.hold(buf.subarray(start), events);
        return events;
      }
      const piece = buf.subarray(start, nl);
      const line = this.pendingBytes === 0 ? piece : Buffer.concat([...this.pending, piece], this.pendingBytes + piece.length);
      this.pending = [];
      this.pendingBytes = 0;
      const content = line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
      if (content.length > this.limit) return this.stop(events);
      events.push(this.decode(content, line.length + 1));
      start = nl + 1;
    }
    return events;
  }

  /** End of stream: an unterminated last line still counts as a line (as `nc` sends it). */
  end(): LineEvent[] {
    if (this.stopped || this.pendingBytes === 0) return [];
    const line = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    const content = line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
    return [this.decode(content, line.length)];
  }

  private hold(rest: Buffer, events: LineEvent[]): void {
    this.pendingBytes += rest.length;
    // Over limit + 1 bytes, or exactly limit + 1 not ending in a possible `\r`: no terminator can save it.
    const over = this.pendingBytes > this.limit + 1 || (this.pendingBytes === this.limit + 1 && rest[rest.length - 1] !== CR);
    if (over) {
      this.stop(events);
      return;
    }
    // Copy: the caller may reuse its chunk buffer.
    this.pending.push(Buffer.from(rest));
  }

  private stop(events: LineEvent[]): LineEvent[] {
    this.stopped = true;
    this.pending = [];
    this.pendingBytes = 0;
    events.push({ kind: 'too_long', limit: this.limit });
    return events;
  }

  private decode(content: Buffer, bytes: number): LineEvent {
    try {
      return { kind: 'line', text: this.decoder.decode(content), bytes };
    } catch {
      return { kind: 'bad_utf8', bytes };
    }
  }
}

// PacketFramer: cuts an MQTT byte stream into whole packets, refusing one whose declared size is over the bound
// before any of its body is buffered. Pure: the codec (mqtt-packet) then parses one whole packet at a time.

export type FrameEvent = { kind: 'packet'; packet: Buffer } | { kind: 'too_large'; size: number } | { kind: 'malformed' };

export class PacketFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  /** `maxPacket`: the largest packet accepted, fixed header included. */
  constructor(private readonly maxPacket: number) {}

  /** Appends `chunk`; returns the whole packets it completes (and at most one failure, after which nothing more). */
  push(chunk: Buffer): FrameEvent[] {
    if (this.failed) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: FrameEvent[] = [];
    let data = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    let at = 0;
    for (;;) {
      const header = readHeader(data, at);
      if (header === 'more') break;
      if (header === 'malformed') {
        this.failed = true;
        out.push({ kind: 'malformed' });
        break;
      }
      const size = header.headerBytes + header.remaining;
      if (size > this.maxPacket) {
        this.failed = true;
        out.push({ kind: 'too_large', size });
        break;
      }
      if (data.length - at < size) break;
      out.push({ kind: 'packet', packet: data.subarray(at, at + size) });
      at += size;
    }
    data = data.subarray(at);
    this.chunks = data.length > 0 && !this.failed ? [data] : [];
    this.buffered = this.failed ? 0 : data.length;
    return out;
  }
}

/** The fixed header at `at`: its length and the remaining length it declares. */
function readHeader(data: Buffer, at: number): { headerBytes: number; remaining: number } | 'more' | 'malformed' {
  let remaining = 0;
  let multiplier = 1;
  for (let i = 1; i <= 4; i++) {
    if (at + i >= data.length) return 'more';
    const byte = data[at + i]!;
    remaining += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return { headerBytes: i + 1, remaining };
    multiplier *= 128;
  }
  return 'malformed'; // a fifth length byte: the spec allows four
}

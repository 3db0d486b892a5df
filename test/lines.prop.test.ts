// LineSplitter properties: any chunking of the same bytes gives the same events, which match a simple
// reference (split on \n, drop one \r, limit, strict UTF-8); the buffer never holds more than limit + 1 bytes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineSplitter, type LineEvent } from '../src/transports/tcp/lines.js';

/** Feeds `bytes` cut at `cuts` (sorted offsets), then ends the stream. */
function run(bytes: Uint8Array, cuts: number[], limit: number): { events: LineEvent[]; maxBuffered: number } {
  const s = new LineSplitter(limit);
  const events: LineEvent[] = [];
  let maxBuffered = 0;
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    events.push(...s.push(Buffer.from(bytes.subarray(start, cut))));
    maxBuffered = Math.max(maxBuffered, s.buffered);
    start = cut;
  }
  events.push(...s.end());
  return { events, maxBuffered };
}

/** The obvious, unbounded implementation. */
function reference(bytes: Uint8Array, limit: number): LineEvent[] {
  const out: LineEvent[] = [];
  const buf = Buffer.from(bytes);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  for (;;) {
    const nl = buf.indexOf(0x0a, start);
    const last = nl === -1;
    const raw = buf.subarray(start, last ? buf.length : nl);
    if (last && raw.length === 0) return out;
    const content = raw[raw.length - 1] === 0x0d ? raw.subarray(0, raw.length - 1) : raw;
    if (content.length > limit) {
      out.push({ kind: 'too_long', limit });
      return out;
    }
    const bytesUsed = raw.length + (last ? 0 : 1);
    try {
      out.push({ kind: 'line', text: decoder.decode(content), bytes: bytesUsed });
    } catch {
      out.push({ kind: 'bad_utf8', bytes: bytesUsed });
    }
    if (last) return out;
    start = nl + 1;
  }
}

const cutsOf = (length: number) => fc.uniqueArray(fc.integer({ min: 0, max: length }), { maxLength: 12 }).map((c) => c.sort((a, b) => a - b));

// Bytes rich in the interesting values: newlines, carriage returns, ASCII and broken/valid UTF-8 pieces.
const interestingByte = fc.oneof(
  fc.constantFrom(0x0a, 0x0d, 0x41, 0x7b, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xff, 0x80),
  fc.integer({ min: 0, max: 255 }),
);

describe('LineSplitter', () => {
  it('random chunking of text lines gives back exactly those lines', () => {
    const line = fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, ''));
    fc.assert(
      fc.property(fc.array(fc.tuple(line, fc.boolean()), { maxLength: 20 }), fc.nat(), (lines, seed) => {
        const text = lines.map(([l, crlf]) => l + (crlf ? '\r\n' : '\n')).join('');
        const bytes = Buffer.from(text);
        const cuts = [...new Set(Array.from({ length: seed % 10 }, (_, i) => (seed * (i + 7)) % (bytes.length + 1)))].sort((a, b) => a - b);
        const { events } = run(bytes, cuts, 1 << 20);
        expect(events).toEqual(lines.map(([l, crlf]) => ({ kind: 'line', text: l, bytes: Buffer.byteLength(l) + (crlf ? 2 : 1) })));
      }),
      { numRuns: 300 },
    );
  });

  it('any bytes, any chunking: the same events as the reference, and at most limit + 1 bytes buffered', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 24 }),
        fc.array(interestingByte, { maxLength: 120 }).chain((arr) => fc.tuple(fc.constant(Uint8Array.from(arr)), cutsOf(arr.length))),
        (limit, [bytes, cuts]) => {
          const whole = run(bytes, [], limit);
          const chunked = run(bytes, cuts, limit);
          expect(chunked.events).toEqual(whole.events);
          expect(whole.events).toEqual(reference(bytes, limit));
          expect(chunked.maxBuffered).toBeLessThanOrEqual(limit + 1);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('stops after too_long and yields nothing more', () => {
    const s = new LineSplitter(4);
    expect(s.push(Buffer.from('abcdef'))).toEqual([{ kind: 'too_long', limit: 4 }]);
    expect(s.isStopped).toBe(true);
    expect(s.push(Buffer.from('ok\n'))).toEqual([]);
    expect(s.end()).toEqual([]);
  });

  it('a line of exactly the limit passes with \\n or \\r\\n, even when the \\r and \\n arrive apart', () => {
    const s = new LineSplitter(4);
    expect(s.push(Buffer.from('abcd\r'))).toEqual([]);
    expect(s.push(Buffer.from('\nabcd\n'))).toEqual([
      { kind: 'line', text: 'abcd', bytes: 6 },
      { kind: 'line', text: 'abcd', bytes: 5 },
    ]);
  });

  it('a UTF-8 character split across chunks is reassembled', () => {
    const s = new LineSplitter(64);
    const bytes = Buffer.from('€uro\n');
    expect(s.push(bytes.subarray(0, 1))).toEqual([]);
    expect(s.push(bytes.subarray(1, 2))).toEqual([]);
    expect(s.push(bytes.subarray(2))).toEqual([{ kind: 'line', text: '€uro', bytes: 7 }]);
  });
});

// Codec properties: valid frames round-trip; arbitrary input never throws and always yields a frame or a protocol error.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeClientFrame, type ClientFrame } from '../src/protocol/frames.js';
import { ERROR_CODES, ProtocolError } from '../src/protocol/errors.js';
import { encodeData, EncodedData, Outgoing, senderOf } from '../src/protocol/outgoing.js';
import { topicText } from '../src/protocol/topic.js';
import { encodeWsTextFrame, wsTextFrame } from '../src/transports/ws/frame.js';

const topic = fc.array(fc.constantFrom('a', 'b', 'x1', 'déjà'), { minLength: 1, maxLength: 5 }).map((s) => s.join('/'));
const filter = fc.oneof(topic, topic.map((t) => `${t}/#`), topic.map((t) => `+/${t}`));
const id = fc.option(fc.oneof(fc.integer(), fc.string({ maxLength: 20 })), { nil: undefined });
const data = fc.jsonValue();
const name = fc.string({ minLength: 1, maxLength: 64 }).filter((s) => s.trim() === s && !/[\u0000-\u001f\u007f-\u009f]/.test(s) && !/^c\d+$/.test(s));

const validFrame: fc.Arbitrary<ClientFrame> = fc.oneof(
  fc.record({ op: fc.constant('sub' as const), topic: filter, since: fc.option(fc.constant(0), { nil: undefined }), presence: fc.option(fc.boolean(), { nil: undefined }), id }, { requiredKeys: ['op', 'topic'] }),
  // A position on one concrete topic: seq and the epoch the client saw.
  fc.record({ op: fc.constant('sub' as const), topic, since: fc.nat(), epoch: fc.string({ minLength: 1, maxLength: 24 }), id }, { requiredKeys: ['op', 'topic', 'since', 'epoch'] }),
  // Positions on the topics of a wildcard filter: one map of seqs, one of epochs.
  topic.chain((t) =>
    fc.record({
      op: fc.constant('sub' as const),
      topic: fc.constant(`${t}/#`),
      since: fc.dictionary(fc.constantFrom(t, `${t}/a`, `${t}/b/c`), fc.nat(), { maxKeys: 3 }),
      id,
    }, { requiredKeys: ['op', 'topic', 'since'] }),
  ),
  fc.record({ op: fc.constant('unsub' as const), topic: filter, id }, { requiredKeys: ['op', 'topic'] }),
  fc.record({ op: fc.constant('pub' as const), topic, data, echo: fc.option(fc.boolean(), { nil: undefined }), id }, { requiredKeys: ['op', 'topic', 'data'] }),
  fc.record({ op: fc.constant('send' as const), to: name, data, id }, { requiredKeys: ['op', 'to', 'data'] }),
  fc.record({ op: fc.constant('who' as const), topic: fc.option(filter, { nil: undefined }), id }, { requiredKeys: ['op'] }),
  fc.record({ op: fc.constant('rename' as const), name, id }, { requiredKeys: ['op', 'name'] }),
  fc.record({ op: fc.constantFrom('ping' as const, 'quit' as const), id }, { requiredKeys: ['op'] }),
) as fc.Arbitrary<ClientFrame>;

const strip = (v: unknown) => JSON.parse(JSON.stringify(v));

describe('client frame codec', () => {
  it('round-trips every valid frame', () => {
    fc.assert(
      fc.property(validFrame, (frame) => {
        const decoded = decodeClientFrame(JSON.stringify(frame));
        expect(decoded).not.toBeInstanceOf(ProtocolError);
        expect(strip(decoded)).toEqual(strip(frame));
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on random text and always returns a frame or a known error code', () => {
    const anyText = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.jsonValue().map((v) => JSON.stringify(v)));
    fc.assert(
      fc.property(anyText, (text) => {
        const result = decodeClientFrame(text);
        if (result instanceof ProtocolError) expect(Object.keys(ERROR_CODES)).toContain(result.code);
        else expect(typeof result.op).toBe('string');
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects mutated valid frames with an error code, never an exception', () => {
    const mutation = fc.record({ key: fc.constantFrom('op', 'topic', 'id', 'since', 'presence', 'echo', 'name', 'to', 'data'), value: fc.anything() });
    fc.assert(
      fc.property(validFrame, mutation, (frame, m) => {
        const mutated = { ...frame, [m.key]: m.value };
        let text: string;
        try {
          text = JSON.stringify(mutated);
        } catch {
          return; // not representable as JSON (BigInt): not a frame a client can send
        }
        if (text === undefined) return;
        const result = decodeClientFrame(text);
        if (result instanceof ProtocolError) expect(Object.keys(ERROR_CODES)).toContain(result.code);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('server frame encoding', () => {
  it('a msg written from the template is the frame JSON.stringify would write, data included, and its UTF-8 size', () => {
    // Any UTF-16 (non-ASCII, lone surrogates): the size is counted from the topic's and sender's cached extra bytes.
    const name = fc.oneof(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20, unit: 'binary' }));
    fc.assert(
      fc.property(fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ minLength: 1, maxLength: 40, unit: 'binary' })), fc.nat(), fc.stringMatching(/^[0-9a-z]{1,8}\.[0-9a-z]{1,8}$/), fc.option(fc.record({ id: name, name }), { nil: undefined }), fc.nat(), fc.jsonValue(), (topic, seq, epoch, from, ts, data) => {
        const encoded = encodeData(data) as EncodedData;
        const sender = from && senderOf({ ...from, addr: '127.0.0.1:1', transport: 'ws' });
        const out = Outgoing.message(topic, topicText(topic), seq, epoch, sender, ts, encoded);
        const frame = from ? { op: 'msg', topic, seq, epoch, from, ts, data } : { op: 'msg', topic, seq, epoch, ts, data };
        expect(JSON.parse(out.json)).toEqual(JSON.parse(JSON.stringify(frame)));
        expect(out.bytes).toBe(Buffer.byteLength(out.json));
        expect(JSON.stringify((out.frame as { data?: unknown }).data)).toBe(JSON.stringify(JSON.parse(JSON.stringify(data))));
      }),
      { numRuns: 300 },
    );
  });

  it('a msg kept by the history and rebuilt for a replay is the message that was published: frame, JSON, size, data, sender, QoS, retain flag', () => {
    const name = fc.string({ maxLength: 20 });
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.nat(), fc.stringMatching(/^[0-9a-z]{1,8}\.[0-9a-z]{1,8}$/), fc.option(fc.record({ id: name, name }), { nil: undefined }), fc.nat(), fc.jsonValue(), fc.constantFrom(0, 1, 2), fc.boolean(), (topic, seq, epoch, from, ts, data, qos, retain) => {
        const sender = from && senderOf({ ...from, addr: '127.0.0.1:1', transport: 'mqtt' });
        const out = Outgoing.message(topic, topicText(topic), seq, epoch, sender, ts, encodeData(data) as EncodedData);
        out.maxQos = qos as 0 | 1 | 2;
        out.retain = retain;
        const kept = out.kept();
        out.bytesFor(wsTextFrame); // the live message was written (its JSON flattened) before anyone resumes
        const replayed = kept.replay();
        expect(replayed.json).toBe(out.json);
        expect(replayed.bytes).toBe(out.bytes);
        expect(replayed.dataJson()).toBe(out.dataJson());
        expect(replayed.sender).toBe(out.sender);
        expect(replayed.maxQos).toBe(qos);
        expect(replayed.retain).toBe(retain);
        expect(replayed.direct).toBe(false);
        const f = replayed.frame as { op: string; topic: string; seq: number; epoch: string; from?: unknown; ts: number; data: unknown };
        const g = out.frame as typeof f;
        expect([f.op, f.topic, f.seq, f.epoch, f.from, f.ts]).toEqual([g.op, g.topic, g.seq, g.epoch, g.from, g.ts]);
        expect(JSON.stringify(f.data)).toBe(JSON.stringify(g.data));
        expect(replayed.bytesFor(wsTextFrame).equals(out.bytesFor(wsTextFrame))).toBe(true);
        expect(kept.replay()).toBe(replayed); // every resuming client shares one message and its bytes
      }),
      { numRuns: 300 },
    );
  });

  it('encodeData writes exactly what JSON.stringify writes, and its UTF-8 size (the plain-ASCII string path included)', () => {
    const text = fc.oneof(fc.string({ unit: 'binary-ascii', maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 80 }), fc.string({ maxLength: 80 }), fc.stringMatching(/^[ -~]{0,80}$/));
    fc.assert(
      fc.property(fc.oneof(text, fc.jsonValue()), (data) => {
        const encoded = encodeData(data) as EncodedData;
        expect(encoded.json).toBe(JSON.stringify(data));
        expect(encoded.bytes).toBe(Buffer.byteLength(encoded.json));
      }),
      { numRuns: 500 },
    );
    expect((encodeData('say "hi"\\n') as EncodedData).json).toBe(JSON.stringify('say "hi"\\n'));
  });

  it('pre-framed WebSocket bytes carry the exact JSON with a correct length header', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat({ max: 70_000 }), (value, pad) => {
        const out = new Outgoing({ op: 'msg', topic: 't', seq: 1, epoch: 'e1', data: { value, pad: 'p'.repeat(pad % 3 === 0 ? pad : 0) }, ts: 1 });
        const frame = out.bytesFor(wsTextFrame);
        expect(frame[0]).toBe(0x81);
        let len = frame[1]! & 0x7f;
        let offset = 2;
        if (len === 126) {
          len = frame.readUInt16BE(2);
          offset = 4;
        } else if (len === 127) {
          len = Number(frame.readBigUInt64BE(2));
          offset = 10;
        }
        expect(frame.length).toBe(offset + len);
        expect(frame.subarray(offset).toString()).toBe(out.json);
        expect(JSON.parse(out.bytesFor((o) => Buffer.from(o.json + '\n')).toString())).toEqual(JSON.parse(out.json));
      }),
      { numRuns: 200 },
    );
    expect(encodeWsTextFrame(Buffer.alloc(0))).toEqual(Buffer.from([0x81, 0]));
  });
});

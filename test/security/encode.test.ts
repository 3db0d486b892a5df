// Encode once, at the sender: data that parses but cannot be encoded (nested deeper than the encoder's stack, a
// BigInt from an in-process caller) is refused with bad_frame / HTTP 400 before it is numbered, stored or queued.
// Before the fix it was encoded lazily at delivery: every subscriber was closed with 1011 and history kept it.
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import { Outgoing, encodeData } from '../../src/protocol/outgoing.js';

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

/** 6,000 nested arrays: JSON.parse takes it, JSON.stringify overflows the stack. */
const DEEP_TEXT = '['.repeat(6000) + ']'.repeat(6000);

describe('encode once, at publish/send time', () => {
  it('encodeData refuses what JSON cannot encode; Outgoing embeds pre-encoded data verbatim', () => {
    expect(encodeData(JSON.parse(DEEP_TEXT))).toBeInstanceOf(ProtocolError);
    expect(encodeData(10n)).toBeInstanceOf(ProtocolError);
    expect(encodeData({ toJSON: () => { throw new Error('no'); } })).toBeInstanceOf(ProtocolError);
    const data = { a: [1, 'é'] };
    const enc = encodeData(data);
    if (enc instanceof ProtocolError) throw new Error('unexpected');
    const out = new Outgoing({ op: 'msg', topic: 't', seq: 1, epoch: 'e.1', data, ts: 5 }, undefined, enc);
    expect(JSON.parse(out.json)).toEqual({ op: 'msg', topic: 't', seq: 1, epoch: 'e.1', data, ts: 5 });
    expect(out.bytes).toBe(Buffer.byteLength(out.json));
    // The parsed value is not kept beside its JSON (history is bounded by the bytes it counts): read back on demand.
    const held = Object.getOwnPropertyDescriptor(out.frame, 'data')!;
    expect(held.value).toBeUndefined();
    expect((out.frame as { data?: unknown }).data).toEqual(data);
  });

  it('a deep pub over a socket: the sender gets bad_frame; subscribers stay open and the next message is seq 1', async () => {
    broker = await startTestBroker();
    const subs = await Promise.all([0, 1, 2].map(() => TestClient.connect(`${broker!.url}/deep`)));
    const pub = await TestClient.connect(broker.url);
    pub.send(`{"op":"pub","id":"d1","topic":"deep","data":${DEEP_TEXT}}`);
    const err = await pub.next((f) => f.id === 'd1');
    expect(err).toMatchObject({ op: 'error', code: 'bad_frame' });
    const ack = await pub.request({ op: 'pub', topic: 'deep', data: 'fine' });
    expect(ack).toMatchObject({ op: 'ack', seq: 1, delivered: 3 });
    for (const s of subs) {
      expect(await s.next((f) => f.op === 'msg')).toMatchObject({ seq: 1, data: 'fine' });
      expect(s.ws.readyState).toBe(s.ws.OPEN);
    }
  });

  it('a deep send: the sender gets bad_frame, the recipient is not closed', async () => {
    broker = await startTestBroker();
    const victim = await TestClient.connect(`${broker.url}?name=victim`);
    const sender = await TestClient.connect(broker.url);
    sender.send(`{"op":"send","id":"s1","to":"victim","data":${DEEP_TEXT}}`);
    expect(await sender.next((f) => f.id === 's1')).toMatchObject({ op: 'error', code: 'bad_frame' });
    expect(await victim.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(victim.all.some((f) => f.op === 'direct')).toBe(false);
  });

  it('the HTTP API answers 400 bad_frame and stores nothing; an in-process BigInt publish is refused the same way', async () => {
    broker = await startTestBroker();
    const sub = await TestClient.connect(`${broker.url}/deep`);
    const res = await fetch(`${broker.httpUrl}/api/publish`, { method: 'POST', body: `{"topic":"deep","data":${DEEP_TEXT}}` });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'bad_frame' });
    expect(broker.hub.publish('deep', { big: 10n })).toBeInstanceOf(ProtocolError);
    const ok = await fetch(`${broker.httpUrl}/api/publish`, { method: 'POST', body: '{"topic":"deep","data":1}' });
    expect(await ok.json()).toMatchObject({ seq: 1, delivered: 1 });
    expect(await sub.next((f) => f.op === 'msg')).toMatchObject({ seq: 1, data: 1 });
    expect(sub.ws.readyState).toBe(sub.ws.OPEN);
  });
});

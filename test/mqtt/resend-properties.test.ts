// A QoS 1 message resent (DUP) to a resumed 5.0 session carries its 5.0 properties again (user properties, content
// type, correlation data, response topic, the message expiry counting down, at least 1 s) also when the session holds
// only its bytes: a retained message sent in flight (the session keeps the retained payload, not a live message), and
// any message of a session that came back through Redis (stored as base64, decoded as bytes). Both used to resend
// bare. The Redis encoding of an unacknowledged message carries its properties and when it was published, as
// optional trailing elements: sessions stored without them (older nodes) still decode, with none.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { connect5, type RawMqtt } from '../helpers/raw-mqtt.js';
import { mqttNodes, requireRedis } from '../cluster/redis.js';
import { decodeSession, encodeSession } from '../../src/transports/mqtt/redis-sessions.js';
import { payloadOf } from '../../src/transports/mqtt/packets.js';
import type { StoredSession } from '../../src/transports/mqtt/store.js';
import { Outgoing } from '../../src/protocol/outgoing.js';
import type { ServerFrame } from '../../src/protocol/frames.js';

const PROPERTIES = { userProperties: { site: 'north', tag: ['a', 'b'] }, contentType: 'text/plain', responseTopic: 'rp/reply', correlationData: Buffer.from('req-7'), messageExpiryInterval: 60 };

/** The properties a resend must carry again (the expiry apart: it counts down). */
function expectSameProperties(p: IPublishPacket): void {
  const { messageExpiryInterval, correlationData, ...rest } = (p.properties ?? {}) as typeof PROPERTIES;
  expect(rest).toEqual({ userProperties: { site: 'north', tag: ['a', 'b'] }, contentType: 'text/plain', responseTopic: 'rp/reply' });
  expect(correlationData?.toString()).toBe('req-7');
  expect(messageExpiryInterval).toBeGreaterThanOrEqual(1);
  expect(messageExpiryInterval).toBeLessThanOrEqual(60);
}

/** Publishes `text` on `topic` from `c` at QoS 1 with PROPERTIES, waiting for its PUBACK. */
async function publish(c: RawMqtt, topic: string, text: string, retain: boolean): Promise<void> {
  c.send({ cmd: 'publish', topic, payload: Buffer.from(text), qos: 1, messageId: 1, retain, dup: false, properties: PROPERTIES } as Packet, 5);
  await c.next('puback');
}

const persistent = { sessionExpiryInterval: 300 };

describe('5.0 resend of a retained message sent in flight (one node)', () => {
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startTestBroker({ mqttPort: 0 });
  });
  afterAll(() => broker.close());

  it('the resend after the session resumes carries the retained message\'s properties, its expiry counting down', async () => {
    const pub = (await connect5(broker.mqttPort, 'rp-pub')).c;
    await publish(pub, 'rp/kept', 'kept', true);
    const a = (await connect5(broker.mqttPort, 'rp-sub', { clean: false, properties: persistent })).c;
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rp/kept', qos: 1 }] } as Packet, 5);
    await a.next('suback');
    const first = (await a.next('publish')) as IPublishPacket;
    expect(first).toMatchObject({ retain: true, qos: 1, dup: false });
    expectSameProperties(first);
    a.socket.destroy(); // never acknowledged
    await a.closed;
    const b = await connect5(broker.mqttPort, 'rp-sub', { clean: false, properties: persistent });
    expect(b.connack).toMatchObject({ sessionPresent: true });
    const again = (await b.c.next('publish')) as IPublishPacket;
    expect(again).toMatchObject({ dup: true, retain: true, qos: 1, messageId: first.messageId });
    expect(again.payload.toString()).toBe('kept');
    expectSameProperties(again);
    for (const c of [b.c, pub]) c.socket.destroy();
  });
});

describe.skipIf(!requireRedis('mqtt resend properties across nodes'))('5.0 resend of a session resumed through Redis (two nodes)', () => {
  const nodes = mqttNodes();

  it('a live message left unacknowledged on A is resent by B with its properties', async () => {
    const { a, b } = nodes;
    const pub = (await connect5(a.mqttPort, 'rpc-pub')).c;
    const onA = (await connect5(a.mqttPort, 'rpc-sub', { clean: false, properties: persistent })).c;
    onA.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rpc/live', qos: 1 }] } as Packet, 5);
    await onA.next('suback');
    await publish(pub, 'rpc/live', 'unacked', false);
    const first = (await onA.next('publish')) as IPublishPacket;
    expectSameProperties(first);
    onA.socket.destroy(); // never acknowledged
    await onA.closed;
    const onB = await connect5(b.mqttPort, 'rpc-sub', { clean: false, properties: persistent });
    expect(onB.connack).toMatchObject({ sessionPresent: true });
    const again = (await onB.c.next('publish')) as IPublishPacket;
    expect(again).toMatchObject({ dup: true, retain: false, qos: 1, messageId: first.messageId });
    expect(again.payload.toString()).toBe('unacked');
    expectSameProperties(again);
    for (const c of [onB.c, pub]) c.socket.destroy();
  });
});

describe('a stored session\'s unacknowledged messages and their properties (Redis encoding)', () => {
  const session = (inflight: StoredSession['inflight']): StoredSession => ({ filters: new Map([['a/#', 1]]), positions: new Map(), life: undefined, inflight, nextPacketId: 9, expiresAt: Infinity });
  const live = (ts: number) =>
    new Outgoing({ op: 'msg', topic: 'a/b', seq: 3, epoch: 'e', ts, data: { encoding: 'utf8', payload: 'hi', properties: { userProperties: { k: 'v' }, contentType: 'c', messageExpiryInterval: 60, correlationData: Buffer.from('id').toString('base64') } } } as ServerFrame);

  it('a live message\'s properties and publish time, and a retained payload\'s, come back with its bytes; one without any has none', () => {
    const ts = Date.now() - 5000;
    const kept = { contentType: 'k', responseTopic: 'r', correlationData: Buffer.from([0, 255]) };
    const s = session(
      new Map([
        [1, { qos: 1, released: false, topic: 'a/b', payload: live(ts), retain: false, ids: [4] }],
        [2, { qos: 2, released: false, topic: 'a/r', payload: Buffer.from('x'), retain: true, properties: kept, at: 1234 }],
        [3, { qos: 1, released: false, topic: 'a/p', payload: Buffer.from('y'), retain: false, ids: [5] }],
        // Released (PUBREC came): resent as a PUBREL alone, so its properties are not kept.
        [4, { qos: 2, released: true, topic: 'a/b', payload: live(ts), retain: false }],
      ]),
    );
    const back = decodeSession(encodeSession(s, payloadOf, 1_000_000))!;
    expect(back.inflight.get(1)).toEqual({ qos: 1, released: false, topic: 'a/b', payload: Buffer.from('hi'), retain: false, ids: [4], properties: { userProperties: { k: 'v' }, contentType: 'c', messageExpiryInterval: 60, correlationData: Buffer.from('id') }, at: ts });
    expect(back.inflight.get(2)).toEqual({ qos: 2, released: false, topic: 'a/r', payload: Buffer.from('x'), retain: true, ids: undefined, properties: kept, at: 1234 });
    expect(back.inflight.get(3)).toEqual({ qos: 1, released: false, topic: 'a/p', payload: Buffer.from('y'), retain: false, ids: [5] });
    expect(back.inflight.get(4)).toEqual({ qos: 2, released: true, topic: 'a/b', payload: Buffer.from('hi'), retain: false, ids: undefined });
  });

  it('entries encoded without them (older nodes) decode with no properties; unreadable ones are ignored', () => {
    const old = JSON.stringify({ f: [['a/#', 1]], p: [], i: [[1, 1, false, 'a/b', Buffer.from('x').toString('base64'), false, [7]], [2, 1, false, 'a/c', '', true]], n: 3, x: null });
    const back = decodeSession(old)!;
    expect(back.inflight.get(1)).toEqual({ qos: 1, released: false, topic: 'a/b', payload: Buffer.from('x'), retain: false, ids: [7] });
    expect(back.inflight.get(2)).toEqual({ qos: 1, released: false, topic: 'a/c', payload: Buffer.alloc(0), retain: true, ids: undefined });
    const odd = JSON.stringify({ f: [], p: [], i: [[1, 1, false, 'a/b', '', false, null, { contentType: 5 }, 1], [2, 1, false, 'a/b', '', false, null, 'x', 1], [3, 1, false, 'a/b', '', false, null, { correlationData: '%%' }, 1]], n: 4, x: null });
    for (const f of decodeSession(odd)!.inflight.values()) expect(f.properties).toBeUndefined();
    // A time that is not one: counted from now (the expiry as first sent).
    const noTime = JSON.stringify({ f: [], p: [], i: [[1, 1, false, 'a/b', '', false, null, { messageExpiryInterval: 9 }, 'then']], n: 2, x: null });
    expect(decodeSession(noTime)!.inflight.get(1)!.at).toBeGreaterThan(Date.now() - 60_000);
  });

  it('properties count toward the session\'s size bound: an entry they take past it is left out', () => {
    const big = { userProperties: { k: 'v'.repeat(400) } };
    const s = session(new Map([[1, { qos: 1, released: false, topic: 'a/r', payload: Buffer.from('x'), retain: true, properties: big, at: 1 }]]));
    const bare = encodeSession(session(new Map([[1, { qos: 1, released: false, topic: 'a/r', payload: Buffer.from('x'), retain: true }]])), payloadOf, 1_000_000);
    const bounded = encodeSession(s, payloadOf, bare.length + 100);
    expect(bounded.length).toBeLessThanOrEqual(bare.length + 100);
    expect(decodeSession(bounded)!.inflight.size).toBe(0);
    expect(decodeSession(encodeSession(s, payloadOf, 1_000_000))!.inflight.get(1)!.properties).toEqual(big);
  });
});

// MQTT 5.0 rules the broker says it keeps: the client's maximum packet size for retained messages and resends too
// (docs/mqtt.md: "a message larger than the client's maximum is not sent to it", MQTT-3.1.2-24), a resent message is
// the same message (its properties), shared subscriptions not available (CONNACK says so, SUBACK 0x9E), a topic alias
// refused with 0x94. Each was broken (found by a review helper).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());

const connect5 = (clientId: string, clean: boolean, properties: Record<string, unknown> = {}) =>
  ({ cmd: 'connect', clientId, keepalive: 0, clean, protocolId: 'MQTT', protocolVersion: 5, properties }) as Packet;

async function open5(clientId: string, clean: boolean, properties: Record<string, unknown> = {}): Promise<RawMqtt> {
  const c = await RawMqtt.open(broker.mqttPort, 5);
  c.send(connect5(clientId, clean, properties), 5);
  await c.next('connack');
  return c;
}

describe('5.0 maximum packet size', () => {
  it('a retained message larger than the client takes is not sent to it (and the session goes on)', async () => {
    const pub = await open5('r7-ret-pub', true);
    pub.send({ cmd: 'publish', topic: 'r7/big', payload: Buffer.alloc(500, 0x61), qos: 1, messageId: 1, retain: true, dup: false } as Packet, 5);
    await pub.next('puback');
    const sub = await open5('r7-ret-sub', true, { maximumPacketSize: 128 });
    const sizes: number[] = [];
    sub.socket.on('data', (d: Buffer) => sizes.push(d.length));
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r7/big', qos: 1 }] } as Packet, 5);
    await sub.next('suback');
    pub.send({ cmd: 'publish', topic: 'r7/big', payload: Buffer.from('small'), qos: 0, retain: false, dup: false } as Packet, 5);
    await until(() => sub.published.includes('small'), 'the small live message');
    expect(sub.published).toEqual(['small']);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(128);
    pub.socket.destroy();
    sub.socket.destroy();
  });
});

describe('5.0 resend after a reconnect', () => {
  it('an unacknowledged QoS 1 message is resent with its properties', async () => {
    const a = await open5('r7-resend', true, { sessionExpiryInterval: 300 });
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r7/props', qos: 1 }] } as Packet, 5);
    await a.next('suback');
    const pub = await open5('r7-resend-pub', true);
    const properties = { userProperties: { site: 'north' }, correlationData: Buffer.from('req-1'), responseTopic: 'r7/reply', contentType: 'text/plain' };
    pub.send({ cmd: 'publish', topic: 'r7/props', payload: Buffer.from('hello'), qos: 1, messageId: 1, retain: false, dup: false, properties } as Packet, 5);
    await pub.next('puback');
    const first = (await a.next('publish')) as { properties?: Record<string, unknown> };
    expect(first.properties).toMatchObject({ userProperties: { site: 'north' }, responseTopic: 'r7/reply', contentType: 'text/plain' });
    a.socket.destroy(); // never acknowledged
    const b = await RawMqtt.open(broker.mqttPort, 5);
    b.send(connect5('r7-resend', false, { sessionExpiryInterval: 300 }), 5);
    expect(await b.next('connack')).toMatchObject({ sessionPresent: true });
    const again = (await b.next('publish')) as { dup?: boolean; payload: Buffer; properties?: Record<string, unknown> };
    expect(again.dup).toBe(true);
    expect(again.payload.toString()).toBe('hello');
    expect(again.properties).toMatchObject({ userProperties: { site: 'north' }, responseTopic: 'r7/reply', contentType: 'text/plain' });
    expect((again.properties?.correlationData as Buffer | undefined)?.toString()).toBe('req-1');
    b.socket.destroy();
    pub.socket.destroy();
  });

  it('a resent message larger than the resumed connection takes is not sent to it', async () => {
    const a = await open5('r7-resend-big', true, { sessionExpiryInterval: 300 });
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r7/resend-big', qos: 1 }] } as Packet, 5);
    await a.next('suback');
    const pub = await open5('r7-resend-big-pub', true);
    pub.send({ cmd: 'publish', topic: 'r7/resend-big', payload: Buffer.alloc(500, 0x62), qos: 1, messageId: 1, retain: false, dup: false } as Packet, 5);
    await pub.next('puback');
    await a.next('publish');
    a.socket.destroy(); // never acknowledged
    const b = await RawMqtt.open(broker.mqttPort, 5);
    const sizes: number[] = [];
    b.socket.on('data', (d: Buffer) => sizes.push(d.length));
    b.send(connect5('r7-resend-big', false, { sessionExpiryInterval: 300, maximumPacketSize: 128 }), 5);
    expect(await b.next('connack')).toMatchObject({ sessionPresent: true });
    pub.send({ cmd: 'publish', topic: 'r7/resend-big', payload: Buffer.from('small'), qos: 0, retain: false, dup: false } as Packet, 5);
    await until(() => b.published.includes('small'), 'the small live message');
    expect(Math.max(...sizes)).toBeLessThanOrEqual(128);
    b.socket.destroy();
    pub.socket.destroy();
  });
});

describe('5.0 shared subscriptions (CONNACK: sharedSubscriptionAvailable false)', () => {
  it('a $share filter is not granted as if it were shared', async () => {
    const c = await RawMqtt.open(broker.mqttPort, 5);
    c.send(connect5('r7-share', true), 5);
    expect(await c.next('connack')).toMatchObject({ properties: { sharedSubscriptionAvailable: false } });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/r7/shared', qos: 1 }] } as Packet, 5);
    const outcome = await Promise.race([c.next('suback').then((p) => (p as { granted: number[] }).granted[0]), c.next('disconnect').then((p) => (p as { reasonCode: number }).reasonCode)]);
    expect(outcome).toBe(0x9e); // SUBACK or DISCONNECT: Shared Subscriptions not supported
    c.socket.destroy();
  });
});

describe('5.0 topic alias', () => {
  it('a topic alias over the maximum CONNACK gave (64) closes with DISCONNECT 0x94, topic alias invalid', async () => {
    const c = await open5('r7-alias', true);
    c.send({ cmd: 'publish', topic: 'r7/a', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { topicAlias: 65 } } as Packet, 5);
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x94 });
    c.socket.destroy();
  });
});

// A QoS 1 message resent (DUP) to a resumed 5.0 session carries its 5.0 properties again (user properties, content
// type, correlation data, response topic, the message expiry counting down, at least 1 s) also when the session holds
// only its bytes: a retained message sent in flight (the session keeps the retained payload, not a live message). It
// used to resend bare.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { connect5, type RawMqtt } from '../helpers/raw-mqtt.js';

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

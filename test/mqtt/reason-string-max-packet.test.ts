// 5.0: a reason string is sent only when the packet stays within the client's Maximum Packet Size (PUBACK, PUBREC
// [MQTT-3.4.2-2] [MQTT-3.5.2-2], DISCONNECT [MQTT-3.14.2-3]; [MQTT-3.1.2-25] for every packet). A refused publish's
// PUBACK / PUBREC and the DISCONNECT that closes a connection carried theirs whatever their size; now it is dropped
// rather than exceed the maximum, the reason code kept (found by a review helper). (SUBACK and UNSUBACK carry no
// reason string nor user properties.)
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());
/** The client's maximum: room for a PUBACK's or a DISCONNECT's reason code, none for a sentence. */
const MAX = 16;
const BAD_TOPIC = `rs/${'x'.repeat(80)}`;
/** A small packet's whole size: its remaining length and a 2-byte fixed header. */
const size = (p: Packet) => (p.length ?? 0) + 2;

async function open(clientId: string, maximumPacketSize: number): Promise<RawMqtt> {
  const c = await RawMqtt.open(broker.mqttPort, 5);
  c.send({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5, properties: { maximumPacketSize } } as Packet, 5);
  await c.next('connack');
  return c;
}

it('a refused publish is answered PUBACK / PUBREC 0x90 without the reason string that would exceed the maximum', async () => {
  const c = await open('rs-max', MAX);
  c.send({ cmd: 'publish', topic: BAD_TOPIC, payload: Buffer.from('1'), qos: 1, messageId: 1, dup: false, retain: false } as Packet, 5);
  c.send({ cmd: 'publish', topic: BAD_TOPIC, payload: Buffer.from('2'), qos: 2, messageId: 2, dup: false, retain: false } as Packet, 5);
  for (const p of [await c.next('puback'), await c.next('pubrec')]) {
    expect(p).toMatchObject({ reasonCode: 0x90 });
    expect((p as { properties?: unknown }).properties).toBeUndefined();
    expect(size(p)).toBeLessThanOrEqual(MAX);
  }
  // With room for it, the reason string comes.
  const roomy = await open('rs-roomy', 1000);
  roomy.send({ cmd: 'publish', topic: BAD_TOPIC, payload: Buffer.from('1'), qos: 1, messageId: 1, dup: false, retain: false } as Packet, 5);
  expect(await roomy.next('puback')).toMatchObject({ reasonCode: 0x90, properties: { reasonString: expect.any(String) } });
  for (const x of [c, roomy]) x.socket.destroy();
});

it('the DISCONNECT closing the connection keeps its reason code and drops the reason string that would exceed the maximum', async () => {
  const c = await open('rs-disconnect', MAX);
  c.send({ cmd: 'publish', topic: 'rs/a', payload: Buffer.from('1'), qos: 0, dup: false, retain: false, properties: { topicAlias: 0 } } as Packet, 5);
  const d = await c.next('disconnect');
  expect(d).toMatchObject({ reasonCode: 0x94 });
  expect((d as { properties?: unknown }).properties).toBeUndefined();
  expect(size(d)).toBeLessThanOrEqual(MAX);
});

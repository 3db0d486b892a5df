// MQTT 5.0: a client answering a QoS 2 PUBLISH with PUBREC of reason 0x80 or more refuses the message, and the
// exchange ends there: no PUBREL, its packet id free again [MQTT-4.3.3-4]. The broker sent PUBREL and kept the
// message in flight, so a persistent session got PUBREL again on every resume and the refused messages filled the
// in-flight bound (found by a review helper).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());

const connect = (clientId: string, clean: boolean) =>
  ({ cmd: 'connect', clientId, keepalive: 0, clean, protocolId: 'MQTT', protocolVersion: 5, properties: { sessionExpiryInterval: 300 } }) as Packet;

it('a PUBREC with reason 0x80 ends the QoS 2 exchange: no PUBREL, nothing resent on resume', async () => {
  const web = await TestClient.connect(broker.url);
  const a = await RawMqtt.open(broker.mqttPort, 5);
  a.send(connect('pubrec-refuser', true), 5);
  await a.next('connack');
  a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'refused/q2', qos: 2 }] } as Packet, 5);
  await a.next('suback');
  await web.request({ op: 'pub', topic: 'refused/q2', data: 'no thanks' });
  const refused = (await a.next('publish')) as { messageId: number; qos: number };
  expect(refused.qos).toBe(2);
  a.send({ cmd: 'pubrec', messageId: refused.messageId, reasonCode: 0x80 } as Packet, 5);
  // A ping behind it: its PINGRESP comes after anything the PUBREC was answered with.
  a.send({ cmd: 'pingreq' } as Packet, 5);
  await a.next('pingresp');
  expect(a.packets.map((p) => p.cmd)).toEqual([]);
  a.socket.destroy();
  await a.closed;
  const b = await RawMqtt.open(broker.mqttPort, 5);
  b.send(connect('pubrec-refuser', false), 5);
  expect(await b.next('connack')).toMatchObject({ sessionPresent: true });
  b.send({ cmd: 'pingreq' } as Packet, 5);
  await b.next('pingresp');
  expect(b.packets.map((p) => p.cmd)).toEqual([]); // it was PUBREL for the refused message
  b.socket.destroy();
  web.close();
});

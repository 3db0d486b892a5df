// 5.0: a PUBREL for a packet id the broker holds no QoS 2 exchange for was answered PUBCOMP 0x00 (success), and a
// PUBREC for a packet id it sent nothing with PUBREL 0x00. Both now say 0x92, packet identifier not found (MQTT 5.0,
// 3.6.2.1 and 3.7.2.1); the exchanges the broker does hold still complete with 0x00 (found by a review helper).
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
const connect = (clientId: string, version: 4 | 5) => ({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: version }) as Packet;
const reason = (p: Packet) => [p.messageId, (p as { reasonCode?: number }).reasonCode ?? 0];

it('5.0: PUBREL of an unknown packet id gets PUBCOMP 0x92; of a QoS 2 publish received, PUBCOMP 0x00, then 0x92 again', async () => {
  const c = await RawMqtt.open(broker.mqttPort, 5);
  c.send(connect('pubrel-unknown', 5), 5);
  await c.next('connack');
  c.send({ cmd: 'pubrel', messageId: 9 } as Packet, 5);
  expect(reason(await c.next('pubcomp'))).toEqual([9, 0x92]);
  c.send({ cmd: 'publish', topic: 'relid/a', payload: Buffer.from('"x"'), qos: 2, messageId: 3, dup: false, retain: false } as Packet, 5);
  expect(reason(await c.next('pubrec'))).toEqual([3, 0]);
  c.send({ cmd: 'pubrel', messageId: 3 } as Packet, 5);
  expect(reason(await c.next('pubcomp'))).toEqual([3, 0]);
  c.send({ cmd: 'pubrel', messageId: 3 } as Packet, 5);
  expect(reason(await c.next('pubcomp'))).toEqual([3, 0x92]);
  c.socket.destroy();
});

it('5.0: PUBREC of an unknown packet id gets PUBREL 0x92; of a QoS 2 message sent, PUBREL 0x00', async () => {
  const c = await RawMqtt.open(broker.mqttPort, 5);
  c.send(connect('pubrec-unknown', 5), 5);
  await c.next('connack');
  c.send({ cmd: 'pubrec', messageId: 11 } as Packet, 5);
  expect(reason(await c.next('pubrel'))).toEqual([11, 0x92]);
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'relid/b', qos: 2 }] } as Packet, 5);
  await c.next('suback');
  const web = await TestClient.connect(broker.url);
  await web.request({ op: 'pub', topic: 'relid/b', data: 'y' });
  const pid = (await c.next('publish')).messageId!;
  c.send({ cmd: 'pubrec', messageId: pid } as Packet, 5);
  expect(reason(await c.next('pubrel'))).toEqual([pid, 0]);
  c.socket.destroy();
  web.close();
});

it('3.1.1 has no reason codes: PUBREL of an unknown packet id still gets PUBCOMP', async () => {
  const c = await RawMqtt.open(broker.mqttPort);
  c.send(connect('pubrel-unknown-4', 4));
  await c.next('connack');
  c.send({ cmd: 'pubrel', messageId: 5 } as Packet);
  expect((await c.next('pubcomp')).messageId).toBe(5);
  c.socket.destroy();
});

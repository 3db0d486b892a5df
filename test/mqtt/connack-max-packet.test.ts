// 5.0: a packet over --max-payload plus 1 KB closes the connection (DISCONNECT 0x95), but CONNACK did not say so: a
// compliant client had no way to stay under it. CONNACK now advertises that bound as its Maximum Packet Size
// (MQTT 5.0, 3.2.2.3.6), the exact size the broker still takes (found by a review helper).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import mqttPacket from 'mqtt-packet';

const MAX_PAYLOAD = 4000;
let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0, maxPayload: MAX_PAYLOAD });
});
afterAll(() => broker.close());
const connect = (clientId: string) => ({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5 }) as Packet;
/** A QoS 1 PUBLISH of exactly `size` bytes. */
const publishOf = (size: number, messageId: number) => {
  const at = (n: number) => mqttPacket.generate({ cmd: 'publish', topic: 'mps/a', payload: Buffer.alloc(n, 0x61), qos: 1, messageId, dup: false, retain: false } as Packet, { protocolVersion: 5 });
  const base = at(0).length;
  let packet = at(size - base);
  // A longer remaining length takes more header bytes: shorten the payload by as many.
  packet = at(size - base - (packet.length - size));
  expect(packet.length).toBe(size);
  return packet;
};

it('CONNACK advertises the largest packet the broker takes; a packet of that size is taken, one byte more closes with 0x95', async () => {
  const c = await RawMqtt.open(broker.mqttPort, 5);
  c.send(connect('mps-connack'), 5);
  const connack = (await c.next('connack')) as { properties?: { maximumPacketSize?: number } };
  const max = connack.properties?.maximumPacketSize;
  expect(max).toBe(MAX_PAYLOAD + 1024);
  c.socket.write(publishOf(max!, 1));
  const ack = await c.next('puback');
  expect([ack.messageId, (ack as { reasonCode?: number }).reasonCode ?? 0]).toEqual([1, 0]);
  c.socket.write(publishOf(max! + 1, 2));
  expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x95 });
  await c.closed;
});

it('3.1.1 CONNACK has no properties', async () => {
  const c = await RawMqtt.open(broker.mqttPort);
  c.send({ ...connect('mps-v4'), protocolVersion: 4 } as Packet);
  expect((await c.next('connack')) as { properties?: unknown }).not.toHaveProperty('properties');
  c.socket.destroy();
});

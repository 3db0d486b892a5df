// MQTT 5.0: a connection taken over by a new one with its client id gets DISCONNECT 0x8E, session taken over
// [MQTT-3.1.4-3]. It got 0x87, not authorized, which many clients read as credentials revoked and stop reconnecting
// on (found by a review helper).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());

const connect = (clientId: string) => ({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5 }) as Packet;

it('the connection taken over gets DISCONNECT 0x8E (session taken over)', async () => {
  const first = await RawMqtt.open(broker.mqttPort, 5);
  first.send(connect('taken-over'), 5);
  await first.next('connack');
  const second = await RawMqtt.open(broker.mqttPort, 5);
  second.send(connect('taken-over'), 5);
  expect(await second.next('connack')).toMatchObject({ reasonCode: 0 });
  await first.closed;
  expect(await first.next('disconnect')).toMatchObject({ reasonCode: 0x8e });
  second.socket.destroy();
});

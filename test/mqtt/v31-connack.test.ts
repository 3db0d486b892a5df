// MQTT 3.1 (MQIsdp) has no Session Present flag: its CONNACK's first byte is reserved, 0. A 3.1 client resuming a
// persistent session got it set (found by a review helper); 3.1.1 still says so.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());

/** The CONNACK's two variable-header bytes (flags, return code) of a persistent session's second connection. */
async function secondConnack(clientId: string, protocolId: 'MQIsdp' | 'MQTT', protocolVersion: 3 | 4): Promise<number[]> {
  const connect = { cmd: 'connect', clientId, keepalive: 0, clean: false, protocolId, protocolVersion } as Packet;
  const first = await RawMqtt.open(broker.mqttPort);
  first.send(connect);
  await first.next('connack');
  first.send({ cmd: 'disconnect' } as Packet);
  await first.closed;
  await until(() => broker.hub.inspect.findClient(clientId) === undefined, 'the first connection gone');
  const second = await RawMqtt.open(broker.mqttPort);
  const bytes: Buffer[] = [];
  second.socket.on('data', (d: Buffer) => bytes.push(d));
  second.send(connect);
  await second.next('connack');
  second.socket.destroy();
  const raw = Buffer.concat(bytes);
  return [raw[0]!, raw[2]!, raw[3]!];
}

it('a 3.1 client resuming its session gets a CONNACK with the reserved byte 0; a 3.1.1 client gets Session Present', async () => {
  expect(await secondConnack('v31-client', 'MQIsdp', 3)).toEqual([0x20, 0, 0]);
  expect(await secondConnack('v311-client', 'MQTT', 4)).toEqual([0x20, 1, 0]);
});

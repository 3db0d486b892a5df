// 5.0: a client that sets Request Problem Information to 0 in CONNECT gets no reason string (nor user properties) in
// any packet but PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29]. A refused publish's PUBACK / PUBREC carried one
// all the same; now only a client that did not say 0 gets it (found by a review helper).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());
// A segment over 64 characters: a bad topic, refused in band (0x90, topic name invalid).
const BAD_TOPIC = `pi/${'x'.repeat(80)}`;

async function refusals(clientId: string, properties: Record<string, unknown> | undefined): Promise<Packet[]> {
  const c = await RawMqtt.open(broker.mqttPort, 5);
  c.send({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5, ...(properties && { properties }) } as Packet, 5);
  expect(await c.next('connack')).toMatchObject({ reasonCode: 0 });
  c.send({ cmd: 'publish', topic: BAD_TOPIC, payload: Buffer.from('1'), qos: 1, messageId: 1, dup: false, retain: false } as Packet, 5);
  c.send({ cmd: 'publish', topic: BAD_TOPIC, payload: Buffer.from('2'), qos: 2, messageId: 2, dup: false, retain: false } as Packet, 5);
  const got = [await c.next('puback'), await c.next('pubrec')];
  c.socket.destroy();
  return got;
}

it('Request Problem Information 0: a refused publish is answered PUBACK / PUBREC 0x90 without a reason string', async () => {
  const got = await refusals('rpi-0', { requestProblemInformation: false });
  expect(got.map((p) => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual([['puback', 0x90], ['pubrec', 0x90]]);
  for (const p of got) expect((p as { properties?: unknown }).properties).toBeUndefined();
});

it('Request Problem Information 1 (or left out): the refusal carries its reason string', async () => {
  for (const [id, properties] of [['rpi-1', { requestProblemInformation: true }], ['rpi-none', undefined]] as const) {
    const got = await refusals(id, properties);
    for (const p of got) expect(p).toMatchObject({ reasonCode: 0x90, properties: { reasonString: expect.any(String) } });
  }
});

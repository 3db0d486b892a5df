// A session cut as a slow consumer sends nothing more: a QoS 0 retained message that came after the cut in the same
// retained read (no packet id needed) still went out (found by a review helper while splitting session.ts).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0, mailboxSize: 4 });
});
afterAll(() => broker.close());
const connect = (clientId: string) => ({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4 }) as Packet;

it('nothing is sent after the cut: a QoS 0 retained message behind one that found the in-flight window full is not', async () => {
  const p = await RawMqtt.open(broker.mqttPort);
  p.send(connect('rac-pub'));
  await p.next('connack');
  // Retained: one at QoS 1 (it needs a packet id), then one at QoS 0 (it does not).
  p.send({ cmd: 'publish', topic: 'rac/r/1', payload: Buffer.from('"one"'), qos: 1, messageId: 1, dup: false, retain: true } as Packet);
  await p.next('puback');
  p.send({ cmd: 'publish', topic: 'rac/r/2', payload: Buffer.from('"two"'), qos: 0, dup: false, retain: true } as Packet);

  const s = await RawMqtt.open(broker.mqttPort);
  s.send(connect('rac-sub'));
  await s.next('connack');
  s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rac/live', qos: 1 }] } as Packet);
  await s.next('suback');
  // The window (4) fills with live messages the client never acknowledges.
  for (let i = 1; i <= 4; i++) p.send({ cmd: 'publish', topic: 'rac/live', payload: Buffer.from(String(i)), qos: 1, messageId: 10 + i, dup: false, retain: false } as Packet);
  await until(() => s.packets.filter((x) => x.cmd === 'publish').length === 4, '4 in flight');
  s.packets.splice(0);
  // Now the retained ones: the QoS 1 one finds no packet id (the session is cut), the QoS 0 one must not go out.
  s.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'rac/r/#', qos: 1 }] } as Packet);
  await s.closed;
  expect(s.packets.filter((x) => x.cmd === 'publish').map((x) => (x as { topic: string }).topic)).toEqual([]);
  p.socket.destroy();
});

// A QoS 1 retained message due to a new subscription while the client's in-flight window is full was dropped
// silently: neither sent once the client acknowledged, nor the session cut as a slow consumer (as a live message is;
// found by a review helper).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0, mailboxSize: 8 });
});
afterAll(() => broker.close());
const connect = (clientId: string) => ({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4 }) as Packet;

it('a QoS 1 retained message is not lost silently when the in-flight window is full', async () => {
  const p = await RawMqtt.open(broker.mqttPort);
  p.send(connect('rwf-pub'));
  await p.next('connack');
  p.send({ cmd: 'publish', topic: 'rwf/ret', payload: Buffer.from('"kept"'), qos: 1, messageId: 1, dup: false, retain: true } as Packet);
  await p.next('puback');

  const s = await RawMqtt.open(broker.mqttPort);
  s.send(connect('rwf-sub'));
  await s.next('connack');
  s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rwf/live', qos: 1 }] } as Packet);
  await s.next('suback');
  for (let i = 1; i <= 8; i++) p.send({ cmd: 'publish', topic: 'rwf/live', payload: Buffer.from(String(i)), qos: 1, messageId: 10 + i, dup: false, retain: false } as Packet);
  await until(() => s.packets.filter((x) => x.cmd === 'publish').length === 8, '8 in flight');
  const inflight = s.packets.splice(0).map((x) => (x as { messageId: number }).messageId);
  // The window is full (8 unacknowledged): now a subscription with a retained message, then every PUBACK.
  s.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'rwf/ret', qos: 1 }] } as Packet);
  await s.next('suback');
  // The retained message is queued behind the SUBACK (the memory store answers at once): a PINGRESP comes after it
  // has met the full window (or the connection is cut as a slow consumer, and no PINGRESP comes).
  const closed = () => s.socket.destroyed || s.socket.readableEnded;
  s.send({ cmd: 'pingreq' } as Packet);
  await until(() => closed() || s.packets.some((x) => x.cmd === 'pingresp'), 'a PINGRESP, or the session cut');
  for (const id of inflight) s.send({ cmd: 'puback', messageId: id } as Packet);
  // At least once: either the retained message arrives, or the connection is cut (slow consumer) so the client knows.
  // Another PINGRESP orders after a retained message the PUBACKs let go.
  if (!closed()) s.send({ cmd: 'pingreq' } as Packet);
  await until(() => closed() || s.packets.filter((x) => x.cmd === 'pingresp').length === 2, 'a second PINGRESP, or the session cut');
  if (!closed()) expect(s.published).toEqual(['"kept"']);
  s.socket.destroy();
  p.socket.destroy();
});

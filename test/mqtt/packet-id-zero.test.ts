// A QoS 1 or 2 PUBLISH, a SUBSCRIBE and an UNSUBSCRIBE carry a non-zero packet id [MQTT-2.2.1-3] (3.1.1:
// [MQTT-2.3.1-1]). One with id 0 was accepted and answered (a PUBACK with id 0, the message published): it is a
// protocol error now, the connection closed (5.0: DISCONNECT 0x82) and nothing published (found by a review helper).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { cleanConnect, closedWithin, RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());
const connect = cleanConnect;

for (const version of [4, 5] as const) {
  for (const qos of [1, 2] as const) {
    it(`${version === 5 ? '5.0' : '3.1.1'}: a QoS ${qos} PUBLISH with packet id 0 closes the connection, unanswered and unpublished`, async () => {
      const topic = `pid0/${version}/${qos}`;
      const web = await TestClient.connect(`${broker.url}?topics=${topic}`);
      const c = await RawMqtt.open(broker.mqttPort, version);
      c.send(connect(`pid0-${version}-${qos}`, version), version);
      await c.next('connack');
      c.send({ cmd: 'publish', topic, payload: Buffer.from('"zero"'), qos, messageId: 0, dup: false, retain: false } as Packet, version);
      expect(await closedWithin(c)).toBe(true);
      expect(c.packets.map((p) => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual(version === 5 ? [['disconnect', 0x82]] : []);
      await web.request({ op: 'pub', topic, data: 'marker' });
      await web.next((f) => f.op === 'msg' && f.data === 'marker');
      expect(web.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['marker']);
      web.close();
    });
  }
}

it('a SUBSCRIBE or an UNSUBSCRIBE with packet id 0 closes the connection (5.0: DISCONNECT 0x82)', async () => {
  const s = await RawMqtt.open(broker.mqttPort, 5);
  s.send(connect('pid0-sub', 5), 5);
  await s.next('connack');
  s.send({ cmd: 'subscribe', messageId: 0, subscriptions: [{ topic: 'pid0/s', qos: 0 }] } as Packet, 5);
  expect(await closedWithin(s)).toBe(true);
  expect(s.packets.map((p) => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual([['disconnect', 0x82]]);
  const u = await RawMqtt.open(broker.mqttPort);
  u.send(connect('pid0-unsub', 4));
  await u.next('connack');
  u.send({ cmd: 'unsubscribe', messageId: 0, unsubscriptions: ['pid0/u'] } as Packet);
  expect(await closedWithin(u)).toBe(true);
  expect(u.packets.map((p) => p.cmd)).toEqual([]);
});

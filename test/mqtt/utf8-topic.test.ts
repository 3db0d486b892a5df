// A topic name or filter is a UTF-8 encoded string, and ill-formed UTF-8 in one makes the packet malformed: the
// connection is closed [MQTT-1.5.4-1]. The codec decoded such bytes with U+FFFD in their place, so a PUBLISH went out
// on a changed topic (and a SUBSCRIBE held a changed filter). Now the topic's own bytes are checked: the connection
// is closed (5.0: DISCONNECT 0x81) and nothing is published (found by a review helper).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { cleanConnect, closedWithin, RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());
const connect = cleanConnect;
/** A packet of type byte `first` with `body` (under 128 bytes). */
const packet = (first: number, ...parts: Buffer[]) => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([first, body.length]), body]);
};
const str = (bytes: Buffer) => Buffer.concat([Buffer.from([0, bytes.length]), bytes]);
// 0xC3 0x28: a lead byte without its continuation; 0xED 0xA0 0x80: a UTF-16 surrogate (U+D800) encoded.
const ILL_FORMED = [Buffer.from([0x75, 0x38, 0x2f, 0xc3, 0x28]), Buffer.from([0x75, 0x38, 0x2f, 0xed, 0xa0, 0x80])];

async function subscriber(id: string): Promise<RawMqtt> {
  const s = await RawMqtt.open(broker.mqttPort);
  s.send(connect(id, 4));
  await s.next('connack');
  s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'u8/#', qos: 0 }] } as Packet);
  await s.next('suback');
  return s;
}

for (const version of [4, 5] as const) {
  ILL_FORMED.forEach((topic, n) => {
    it(`${version === 5 ? '5.0' : '3.1.1'}: a PUBLISH whose topic is ill-formed UTF-8 (${n === 0 ? 'truncated sequence' : 'surrogate'}) closes the connection, nothing published`, async () => {
      const s = await subscriber(`u8-sub-${version}-${n}`);
      const c = await RawMqtt.open(broker.mqttPort, version);
      c.send(connect(`u8-pub-${version}-${n}`, version), version);
      await c.next('connack');
      // QoS 1, packet id 1, (5.0: no properties), payload "x".
      c.socket.write(packet(0x32, str(topic), Buffer.from([0, 1]), version === 5 ? Buffer.from([0]) : Buffer.alloc(0), Buffer.from('"x"')));
      expect(await closedWithin(c)).toBe(true);
      expect(c.packets.map((p) => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual(version === 5 ? [['disconnect', 0x81]] : []);
      const m = await RawMqtt.open(broker.mqttPort);
      m.send(connect(`u8-marker-${version}-${n}`, 4));
      await m.next('connack');
      m.send({ cmd: 'publish', topic: 'u8/marker', payload: Buffer.from('"m"'), qos: 0, dup: false, retain: false } as Packet);
      await s.next('publish');
      expect(s.packets).toEqual([]);
      for (const x of [s, m]) x.socket.destroy();
    });
  });

  it(`${version === 5 ? '5.0' : '3.1.1'}: a SUBSCRIBE or UNSUBSCRIBE whose filter is ill-formed UTF-8 closes the connection, unanswered`, async () => {
    const props = version === 5 ? Buffer.from([0]) : Buffer.alloc(0);
    for (const [first, tail] of [[0x82, Buffer.from([0])], [0xa2, Buffer.alloc(0)]] as const) {
      const c = await RawMqtt.open(broker.mqttPort, version);
      c.send(connect(`u8-filter-${version}-${first}`, version), version);
      await c.next('connack');
      c.socket.write(packet(first, Buffer.from([0, 7]), props, str(ILL_FORMED[0]!), tail));
      expect(await closedWithin(c)).toBe(true);
      expect(c.packets.map((p) => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual(version === 5 ? [['disconnect', 0x81]] : []);
    }
  });
}

it('a well-formed topic with U+FFFD itself (EF BF BD) is published as it is', async () => {
  const s = await subscriber('u8-sub-fffd');
  const c = await RawMqtt.open(broker.mqttPort);
  c.send(connect('u8-pub-fffd', 4));
  await c.next('connack');
  c.send({ cmd: 'publish', topic: 'u8/\ufffd', payload: Buffer.from('"r"'), qos: 1, messageId: 2, dup: false, retain: false } as Packet);
  await c.next('puback');
  expect(await s.next('publish')).toMatchObject({ topic: 'u8/\ufffd' });
  for (const x of [s, c]) x.socket.destroy();
});

// Two packets a client may not send as they were accepted: a PUBLISH from a client with a Subscription Identifier
// [MQTT-3.3.4-6] (a protocol error, 5.0 DISCONNECT 0x82), and a PINGREQ whose remaining length is not 0 (it has no
// variable header nor payload: a malformed packet, 5.0 DISCONNECT 0x81). Both were answered (PUBACK, PINGRESP); the
// connection is now closed (found by a review helper).
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
const received = (c: RawMqtt) => c.packets.map((p) => [p.cmd, (p as { reasonCode?: number }).reasonCode]);

it('5.0: a PUBLISH from a client with a subscription identifier is a protocol error: DISCONNECT 0x82, nothing published', async () => {
  const web = await TestClient.connect(`${broker.url}?topics=subid/pub`);
  const c = await RawMqtt.open(broker.mqttPort, 5);
  c.send(connect('pub-subid', 5), 5);
  await c.next('connack');
  c.send({ cmd: 'publish', topic: 'subid/pub', payload: Buffer.from('"x"'), qos: 1, messageId: 1, dup: false, retain: false, properties: { subscriptionIdentifier: 5 } } as Packet, 5);
  expect(await closedWithin(c)).toBe(true);
  expect(received(c)).toEqual([['disconnect', 0x82]]);
  await web.request({ op: 'pub', topic: 'subid/pub', data: 'marker' });
  await web.next((f) => f.op === 'msg' && f.data === 'marker');
  expect(web.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['marker']);
  web.close();
});

for (const version of [4, 5] as const) {
  it(`${version === 5 ? '5.0' : '3.1.1'}: a PINGREQ with a remaining length of 1 is malformed: closed${version === 5 ? ' with DISCONNECT 0x81' : ''}, no PINGRESP`, async () => {
    const c = await RawMqtt.open(broker.mqttPort, version);
    c.send(connect(`ping-len-${version}`, version), version);
    await c.next('connack');
    c.socket.write(Buffer.from([0xc0, 0x01, 0x00]));
    expect(await closedWithin(c)).toBe(true);
    expect(received(c)).toEqual(version === 5 ? [['disconnect', 0x81]] : []);
  });
}

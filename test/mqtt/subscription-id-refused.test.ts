// MQTT 5.0 subscription identifiers are not supported (CONNACK says so). A SUBSCRIBE that carries one anyway was
// granted, and its messages came without the identifier, which a granted subscription's messages must carry
// [MQTT-3.3.4-3]: a client routing messages by it lost them. Each filter of such a SUBSCRIBE is now refused 0xA1
// (subscription identifiers not supported), as a shared subscription is refused 0x9E (found by a review helper).
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

it('a SUBSCRIBE with a subscription identifier is refused 0xA1 for each filter, and nothing is delivered through it', async () => {
  const c = await RawMqtt.open(broker.mqttPort, 5);
  c.send({ cmd: 'connect', clientId: 'sub-id', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5 } as Packet, 5);
  expect(await c.next('connack')).toMatchObject({ properties: { subscriptionIdentifiersAvailable: false } });
  c.send({ cmd: 'subscribe', messageId: 1, properties: { subscriptionIdentifier: 7 }, subscriptions: [{ topic: 'subid/a', qos: 1 }, { topic: 'subid/+', qos: 0 }] } as Packet, 5);
  expect(await c.next('suback')).toMatchObject({ messageId: 1, granted: [0xa1, 0xa1] });
  // Without one, the same filter is granted: the live message comes through it alone.
  c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'subid/b', qos: 0 }] } as Packet, 5);
  expect(await c.next('suback')).toMatchObject({ messageId: 2, granted: [0] });
  const web = await TestClient.connect(broker.url);
  await web.request({ op: 'pub', topic: 'subid/a', data: 'a' });
  await web.request({ op: 'pub', topic: 'subid/b', data: 'b' });
  // 'a' was published first: through a granted subscription it would come before 'b'.
  expect(((await c.next('publish')) as { payload: Buffer }).payload.toString()).toBe('"b"');
  expect(c.published).toEqual([]);
  c.socket.destroy();
  web.close();
});

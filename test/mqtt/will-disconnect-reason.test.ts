// MQTT 5.0: only a DISCONNECT with reason 0x00 (normal disconnection) discards the will [MQTT-3.14.4-3]. A client
// that ends with an error reason (0x80 unspecified error, 0x83, ...) is going away because something went wrong: its
// will is published. The broker used to drop it for every reason but 0x04 (found by a review helper).
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

const connect = (clientId: string, extra: Partial<Packet> = {}) => ({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5, ...extra }) as Packet;

/** The wills a watcher of `wills/#` saw after devices ended with DISCONNECT and each of `reasons`. */
async function willsAfter(reasons: number[]): Promise<string[]> {
  const watcher = await RawMqtt.open(broker.mqttPort, 5);
  watcher.send(connect('will-reason-watch'), 5);
  await watcher.next('connack');
  watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'wills/#', qos: 0 }] } as Packet, 5);
  await watcher.next('suback');
  for (const reason of reasons) {
    const d = await RawMqtt.open(broker.mqttPort, 5);
    d.send(connect(`will-reason-${reason}`, { will: { topic: `wills/${reason}`, payload: Buffer.from(`gone ${reason}`), qos: 0, retain: false } } as Partial<Packet>), 5);
    await d.next('connack');
    d.send({ cmd: 'disconnect', reasonCode: reason } as Packet, 5);
    await d.closed;
    // Its will, if any, is published as its connection ends, before the broker lets it go.
    await until(() => broker.hub.inspect.clientCount() === 1, `the device that sent 0x${reason.toString(16)} gone`);
  }
  // A PINGRESP comes after every will published to the watcher before it.
  watcher.send({ cmd: 'pingreq' } as Packet, 5);
  await watcher.next('pingresp');
  watcher.socket.destroy();
  return [...watcher.published].sort();
}

it('a 5.0 DISCONNECT with an error reason keeps the will; only 0x00 discards it', async () => {
  expect(await willsAfter([0x00, 0x80, 0x83, 0x04])).toEqual(['gone 128', 'gone 131', 'gone 4'].sort());
});

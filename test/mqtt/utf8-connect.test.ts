// CONNECT's client id, will topic and user name are UTF-8 strings: ill-formed bytes in one make the packet malformed
// [MQTT-1.5.4-1]. The codec read them with U+FFFD in their place, so a client connected under a changed client id,
// and its will went out on a changed topic. Such a CONNECT is refused now (5.0: CONNACK 0x81), with no will.
import { afterAll, beforeAll, expect, it } from 'vitest';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { cleanConnect, closedWithin, RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());

/** `packet` generated with `marker` (é, C3 A9) in one string, whose second byte is then broken (C3 28: ill-formed). */
function broken(packet: Packet, version: 4 | 5): Buffer {
  const bytes = Buffer.from(mqttPacket.generate(packet, { protocolVersion: version }));
  const at = bytes.indexOf(Buffer.from([0xc3, 0xa9]));
  expect(at).toBeGreaterThan(0);
  bytes[at + 1] = 0x28;
  return bytes;
}

for (const version of [4, 5] as const) {
  for (const field of ['client id', 'will topic', 'user name'] as const) {
    it(`${version === 5 ? '5.0' : '3.1.1'}: a CONNECT whose ${field} is ill-formed UTF-8 is refused; no will goes out`, async () => {
      const watcher = await RawMqtt.open(broker.mqttPort);
      watcher.send(cleanConnect(`u8c-watch-${version}-${field.replace(' ', '')}`, 4));
      await watcher.next('connack');
      watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'u8c/#', qos: 0 }] } as Packet);
      await watcher.next('suback');
      const base = { cmd: 'connect', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: version } as const;
      const connect = {
        ...base,
        clientId: field === 'client id' ? `u8c-\u00e9-${version}` : `u8c-${version}-${field.replace(' ', '')}`,
        will: { topic: field === 'will topic' ? 'u8c/\u00e9' : 'u8c/will', payload: Buffer.from('gone'), qos: 0, retain: false },
        ...(field === 'user name' && { username: 'u\u00e9' }),
      } as Packet;
      const c = await RawMqtt.open(broker.mqttPort, version);
      c.socket.write(broken(connect, version));
      const closed = await closedWithin(c);
      const connack = c.packets.find((p) => p.cmd === 'connack') as { returnCode?: number; reasonCode?: number } | undefined;
      expect({ closed, accepted: connack !== undefined && (connack.returnCode ?? connack.reasonCode) === 0 }).toEqual({ closed: true, accepted: false });
      if (version === 5) expect(connack?.reasonCode).toBe(0x81);
      // Nothing went out on any topic (a ping barrier on the watcher's own connection).
      watcher.send({ cmd: 'pingreq' } as Packet);
      await watcher.next('pingresp');
      expect(watcher.published).toEqual([]);
      watcher.socket.destroy();
    });
  }
}

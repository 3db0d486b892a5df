// --mqtt-max-keepalive: the longest keepalive a client may ask for. A 5.0 client asking more, or none (0), is told the
// limit in its CONNACK (Server Keep Alive) and held to it: silent for 1.5 × the limit, it is closed and its will goes.
// A 3.1.1 client cannot be told, so asking more or none is refused (0x02, as Mosquitto does). Without the flag nothing
// changes. Raw packets over real sockets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { closedWithin, RawMqtt } from '../helpers/raw-mqtt.js';

let capped: TestBroker;
let plain: TestBroker;
beforeAll(async () => {
  [capped, plain] = await Promise.all([startTestBroker({ mqttPort: 0, mqttMaxKeepalive: 1 }), startTestBroker({ mqttPort: 0 })]);
});
afterAll(async () => {
  await Promise.all([capped?.close(), plain?.close()]);
});

async function connect(b: TestBroker, version: 4 | 5, keepalive: number, clientId: string, extra: Partial<Packet> = {}): Promise<{ c: RawMqtt; connack: Packet & { returnCode?: number; reasonCode?: number; properties?: { serverKeepAlive?: number } } }> {
  const c = await RawMqtt.open(b.mqttPort, version);
  c.send({ cmd: 'connect', clientId, keepalive, clean: true, protocolId: 'MQTT', protocolVersion: version, ...extra } as Packet, version);
  return { c, connack: (await c.next('connack')) as never };
}

describe('--mqtt-max-keepalive', () => {
  it('a 5.0 client asking a longer keepalive, or none, is told the limit in CONNACK and held to it (its will goes)', async () => {
    const { c: watcher } = await connect(capped, 5, 1, 'ka-watcher');
    watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ka/wills/#', qos: 0 }] } as Packet, 5);
    await watcher.next('suback');
    const pinging = setInterval(() => watcher.send({ cmd: 'pingreq' } as Packet, 5), 300);
    try {
      const started = Date.now();
      const { c, connack } = await connect(capped, 5, 600, 'ka-long', { will: { topic: 'ka/wills/long', payload: Buffer.from('gone'), qos: 0, retain: false } } as Partial<Packet>);
      expect(connack).toMatchObject({ reasonCode: 0, properties: { serverKeepAlive: 1 } });
      // Held to 1 s, not the 600 it asked: silent past 1.5 s, closed, and its will is published.
      const will = await watcher.next('publish', 10_000);
      expect(will).toMatchObject({ topic: 'ka/wills/long' });
      await c.closed;
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400);

      const none = await connect(capped, 5, 0, 'ka-none');
      expect(none.connack).toMatchObject({ reasonCode: 0, properties: { serverKeepAlive: 1 } });
      await none.c.closed;
      // Within the limit: accepted as asked, no Server Keep Alive.
      const within = await connect(capped, 5, 1, 'ka-within');
      expect(within.connack.reasonCode).toBe(0);
      expect(within.connack.properties?.serverKeepAlive).toBeUndefined();
      within.c.send({ cmd: 'disconnect' } as Packet, 5);
    } finally {
      clearInterval(pinging);
      watcher.send({ cmd: 'disconnect' } as Packet, 5);
    }
  });

  it('a 3.1.1 client asking a longer keepalive, or none, is refused with 0x02; within the limit it is accepted', async () => {
    for (const keepalive of [2, 0]) {
      const { c, connack } = await connect(capped, 4, keepalive, `ka-v4-${keepalive}`);
      expect(connack.returnCode).toBe(0x02);
      expect(await closedWithin(c)).toBe(true);
    }
    const { c, connack } = await connect(capped, 4, 1, 'ka-v4-ok');
    expect(connack.returnCode).toBe(0);
    c.send({ cmd: 'disconnect' } as Packet);
  });

  it('without the flag a keepalive of 0 stands for either version: no Server Keep Alive, nothing refused', async () => {
    const v5 = await connect(plain, 5, 0, 'ka-plain5');
    expect(v5.connack.reasonCode).toBe(0);
    expect(v5.connack.properties?.serverKeepAlive).toBeUndefined();
    const v4 = await connect(plain, 4, 0, 'ka-plain4');
    expect(v4.connack.returnCode).toBe(0);
    v5.c.send({ cmd: 'disconnect' } as Packet, 5);
    v4.c.send({ cmd: 'disconnect' } as Packet);
  });
});

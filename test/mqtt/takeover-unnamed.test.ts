// A reconnect while an open connection of this node holds the session and the takeover cannot close it (a client id
// that is no broker name: `c<number>`, over 64 characters): its hold is overridden at once, not waited out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0, closeTimeoutMs: 20_000 });
});
afterAll(() => broker.close());

const connect = (clientId: string) => ({ cmd: 'connect', clientId, keepalive: 0, clean: false, protocolId: 'MQTT', protocolVersion: 4 }) as Packet;

describe('a reconnect while a connection of this node holds the session', () => {
  for (const clientId of ['c4242', 'x'.repeat(65)]) {
    it(`is answered at once when that connection cannot be taken over (client id ${clientId.slice(0, 8)}…, no broker name)`, async () => {
      const a = await RawMqtt.open(broker.mqttPort);
      a.send(connect(clientId));
      expect(await a.next('connack')).toMatchObject({ returnCode: 0 });
      const b = await RawMqtt.open(broker.mqttPort);
      const started = Date.now();
      b.send(connect(clientId));
      const connack = await b.next('connack', 3000).catch((err: Error) => err);
      expect(connack, `after ${Date.now() - started} ms`).toMatchObject({ returnCode: 0 });
      a.socket.destroy();
      b.socket.destroy();
    });
  }
});

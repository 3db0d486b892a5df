// A client id that is no broker name (`c<number>`, over 64 characters) is still one connection [MQTT-3.1.4-2]: a new
// CONNECT with it closes the one open on this node (found by client id, not by name), whose session is kept and
// resumed by the new one, answered at once (not after the close timeout).
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

describe('a client id that is no broker name, connected twice', () => {
  for (const clientId of ['c4242', 'x'.repeat(65)]) {
    it(`the new connection takes the first over and resumes its session (client id ${clientId.slice(0, 8)}…)`, async () => {
      const a = await RawMqtt.open(broker.mqttPort);
      a.send(connect(clientId));
      expect(await a.next('connack')).toMatchObject({ returnCode: 0 });
      const b = await RawMqtt.open(broker.mqttPort);
      const started = Date.now();
      b.send(connect(clientId));
      const connack = await b.next('connack', 3000).catch((err: Error) => err);
      expect(connack, `after ${Date.now() - started} ms`).toMatchObject({ returnCode: 0, sessionPresent: true });
      // The first connection was taken over: closed by the broker.
      await a.closed;
      a.socket.destroy();
      b.socket.destroy();
    });
  }
});

// An MQTT connection whose actor crashed (1011) while its client did not read: its DISCONNECT could not flush, and
// with no actor left to cut it the socket held its slot for ever (as on TCP, WebSocket and SSE). The socket wire now
// bounds its last write by --close-timeout-ms (SocketWire.endWith, shared with TCP).
import { afterAll, beforeAll, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0, closeTimeoutMs: 300, mailboxBytes: 256 * 1024 * 1024, mailboxSize: 1_000_000 });
});
afterAll(() => broker.close());

it('a crashed MQTT connection whose client does not read is cut after --close-timeout-ms', async () => {
  const c = await RawMqtt.open(broker.mqttPort);
  c.send({ cmd: 'connect', clientId: 'crash-close', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4 } as Packet);
  await c.next('connack');
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'mc/t', qos: 0 }] } as Packet);
  await c.next('suback');
  const link = broker.hub.inspect.findClient('crash-close')!;
  c.socket.pause(); // reads nothing more: what the broker writes backs up
  const pub = await TestClient.connect(broker.url);
  const data = 'z'.repeat(60_000);
  for (let i = 0; i < 120; i++) await pub.request({ op: 'pub', topic: 'mc/t', data }); // ~7 MB: past what the kernel takes
  pub.close();
  link.send = () => {
    throw new Error('injected handler fault'); // as test/security/supervision.test.ts does
  };
  c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'mc/other', qos: 0 }] } as Packet); // its SUBACK: the fault
  await until(() => broker.hub.inspect.findClient(link.id) === undefined, 'the crashed connection reaped');
  // Cut: the client's next write meets a reset (it would be taken in for ever if the socket were still open).
  let reset = false;
  c.socket.once('error', () => (reset = true));
  await until(() => {
    if (!c.socket.destroyed) c.socket.write(Buffer.from([0xc0, 0x00])); // PINGREQ
    return reset || c.socket.destroyed;
  }, 'the broker cut the socket', 5000);
  c.socket.destroy();
});

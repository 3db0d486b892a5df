// --mqtt-sessions 0 keeps no persistent session. On one node (sessions in memory) the first persistent session that
// ended spun the event loop for good (the store made room for it while it could hold none): the whole broker stopped
// answering. A broker process of its own, as that loop would stop the test's process too.
import { afterAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { spawnBroker, type ChildBroker } from '../helpers/child-broker.js';
import { freePort } from '../helpers/ports.js';
import { persistentConnect, RawMqtt } from '../helpers/raw-mqtt.js';

let broker: ChildBroker | undefined;
afterAll(() => void broker?.child.kill('SIGKILL'));

it('--mqtt-sessions 0 on one node: a persistent session ends, nothing is kept, and the broker still answers', async () => {
  const mqttPort = await freePort();
  broker = await spawnBroker(['--mqtt-port', String(mqttPort), '--mqtt-sessions', '0'], 'mqtt listening');
  const a = await RawMqtt.open(mqttPort);
  a.send(persistentConnect('z'));
  expect(await a.next('connack')).toMatchObject({ returnCode: 0, sessionPresent: false });
  a.send({ cmd: 'disconnect' } as Packet);
  await a.closed;
  const b = await RawMqtt.open(mqttPort);
  b.send(persistentConnect('z'));
  expect(await b.next('connack', 5000)).toMatchObject({ returnCode: 0, sessionPresent: false });
  const health = await fetch(`http://127.0.0.1:${broker.port}/healthz`, { signal: AbortSignal.timeout(5000) });
  expect(health.status).toBe(200);
  b.socket.destroy();
}, 30_000);

// The grant a connect hook's answer leaves a connection: a `name` or `admin` without an `acl` keeps the token's acl
// whole (its subDeny was dropped), and an MQTT will is checked against the hook's grant too (only the token's was).
import { SignJWT } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';

const SECRET = 'review-hook-grant-secret';
const token = (sub: string, acl: object) => new SignJWT({ acl }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

let backend: BackendProcess;
let broker: TestBroker;
beforeAll(async () => {
  backend = await startBackend();
  broker = await startTestBroker({ authSecret: SECRET, hookUrl: backend.url, hooks: 'connect', mqttPort: 0 });
});
afterAll(async () => {
  await broker?.close();
  await backend?.stop();
});

it("a connect answer with `admin` (or `name`) but no `acl` keeps the token's acl.subDeny", async () => {
  // The backend only says the client is not an admin; the token's acl is meant to stand, subDeny included.
  await backend.script({ connect: { answer: { admin: false } } });
  const c = await TestClient.connect(`${broker.url}?token=${await token('ada', { sub: ['#'], subDeny: ['secret/#'] })}`);
  const reply = await c.request({ op: 'sub', topic: 'secret/#' });
  c.ws.close();
  expect(reply).toMatchObject({ op: 'error', code: 'forbidden' });
});

it("an MQTT will is checked against the grant the connect hook gave, not only the token's: CONNECT refused", async () => {
  // The token may publish anywhere; the backend narrows this connection to publishing nothing.
  await backend.script({ connect: { answer: { acl: { pub: [], sub: ['#'] } } } });
  const dev = await RawMqtt.open(broker.mqttPort);
  dev.send({
    cmd: 'connect', clientId: 'dev', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4, username: 'u',
    password: Buffer.from(await token('dev', {})),
    will: { topic: 'alarm/fire', payload: Buffer.from('forged-will'), qos: 0, retain: false },
  });
  // 3.1.1 "not authorized", as for a will the token itself may not publish (it was accepted, and the will went out
  // when the socket dropped, past the hook's grant that refused the same PUBLISH).
  expect(await dev.next('connack')).toMatchObject({ returnCode: 5 });
  await dev.closed;
});

// With tokens required and --mqtt-anonymous-acl, a client without a password is named by its client id, but it is no
// user: a persistent session kept for a token user whose client id is its name was resumed by an anonymous client
// reusing that client id (it got the user's unacknowledged messages), and an anonymous client whose client id was a
// token user's name closed that user's connection and took the name (found by a review helper).
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

const SECRET = 'test-secret-that-is-long-enough-for-hs256';
const token = (sub: string, acl: object) => new SignJWT({ acl }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ authSecret: SECRET, mqttPort: 0, mqttAnonymousAcl: '{"subDeny":["test/nosubscribe"]}' });
});
afterAll(() => broker.close());

async function connect(c: RawMqtt, password?: string): Promise<Packet> {
  c.send({ cmd: 'connect', clientId: 'alice', keepalive: 0, clean: false, protocolId: 'MQTT', protocolVersion: 4, ...(password && { username: 'u', password: Buffer.from(password) }) });
  return c.next('connack');
}

describe('anonymous MQTT clients and token users', () => {
  it("an anonymous client reusing a token user's client id does not resume that user's session", async () => {
    const alice = await RawMqtt.open(broker.mqttPort);
    expect(await connect(alice, await token('alice', { sub: ['secret/#'], pub: [] }))).toMatchObject({ returnCode: 0 });
    alice.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'secret/#', qos: 1 }] });
    await alice.next('suback');
    await broker.hub.publishAsync('secret/plans', 'the-secret-payload');
    expect(await alice.next('publish')).toMatchObject({ qos: 1 }); // received, never acknowledged
    alice.socket.destroy();
    await until(() => broker.hub.inspect.clientCount() === 0, "alice's connection gone (its session kept)");
    const anon = await RawMqtt.open(broker.mqttPort);
    const connack = await connect(anon);
    anon.send({ cmd: 'pingreq' });
    await anon.next('pingresp');
    expect({ returnCode: (connack as { returnCode?: number }).returnCode, sessionPresent: (connack as { sessionPresent?: boolean }).sessionPresent, published: anon.published }).toEqual({ returnCode: 0, sessionPresent: false, published: [] });
    anon.socket.destroy();
  });
});

describe('anonymous MQTT clients and token users: names', () => {
  it("an anonymous client whose client id is a token user's name does not close that user's connection (another client id)", async () => {
    const alice = await RawMqtt.open(broker.mqttPort);
    alice.send({ cmd: 'connect', clientId: 'dev-of-carol', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4, username: 'u', password: Buffer.from(await token('carol', { sub: ['x/#'], pub: [] })) });
    expect(await alice.next('connack')).toMatchObject({ returnCode: 0 });
    let closed = false;
    void alice.closed.then(() => (closed = true));
    const carolId = broker.hub.find('carol')?.id;
    expect(carolId).toBeDefined();
    const anon = await RawMqtt.open(broker.mqttPort);
    anon.send({ cmd: 'connect', clientId: 'carol', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4 });
    expect(await anon.next('connack')).toMatchObject({ returnCode: 2 }); // identifier rejected
    alice.send({ cmd: 'pingreq' });
    await alice.next('pingresp');
    // Carol's own connection stays, and still holds her name (the anonymous client is refused or named otherwise).
    expect({ carolClosed: closed, carolHeldBy: broker.hub.find('carol')?.id }).toEqual({ carolClosed: false, carolHeldBy: carolId });
    anon.socket.destroy();
    alice.socket.destroy();
  });
});

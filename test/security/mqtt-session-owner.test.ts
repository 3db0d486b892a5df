// An MQTT client id is the client's to choose. A persistent session kept under one user's token was resumed by
// anyone connecting with the same client id: another user got the first one's unacknowledged messages, on topics
// their own token could not subscribe to. A session now resumes only for the user it was kept for, and resends only
// what that user's token may still read.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

const SECRET = 'test-secret-that-is-long-enough-for-hs256';
const token = (sub: string, acl: object) => new SignJWT({ acl }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ authSecret: SECRET, mqttPort: 0 });
});
afterAll(() => broker.close());

/** A 3.1.1 connection with clean session 0 under `jwt`: its CONNACK. */
async function connect(c: RawMqtt, jwt: string): Promise<Packet> {
  c.send({ cmd: 'connect', clientId: 'dev1', keepalive: 0, clean: false, protocolId: 'MQTT', protocolVersion: 4, username: 'u', password: Buffer.from(jwt) });
  return c.next('connack');
}

/** Everything the broker sent after CONNACK has arrived once a PINGRESP has (resends go out right after CONNACK). */
async function settled(c: RawMqtt): Promise<void> {
  c.send({ cmd: 'pingreq' });
  await c.next('pingresp');
}

describe('persistent MQTT sessions and users', () => {
  it("another user's token reusing the client id starts clean: none of the first user's unacknowledged messages", async () => {
    const alice = await RawMqtt.open(broker.mqttPort);
    expect(await connect(alice, await token('alice', { sub: ['secret/#'], pub: [] }))).toMatchObject({ returnCode: 0 });
    alice.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'secret/#', qos: 1 }] });
    await alice.next('suback');
    await broker.hub.publishAsync('secret/plans', 'the-secret-payload');
    expect(await alice.next('publish')).toMatchObject({ qos: 1 }); // received, never acknowledged
    alice.socket.destroy();
    const mallory = await RawMqtt.open(broker.mqttPort);
    expect(await connect(mallory, await token('mallory', { sub: ['public/#'], pub: [] }))).toMatchObject({ returnCode: 0, sessionPresent: false });
    await settled(mallory);
    expect(mallory.published).toEqual([]); // alice's message was resent to her
    mallory.socket.destroy();
  });

  it("the same user resumes it, with the unacknowledged messages its token may still read", async () => {
    const a = await RawMqtt.open(broker.mqttPort);
    expect(await connect(a, await token('bea', { sub: ['x/#'], pub: [] }))).toMatchObject({ returnCode: 0 });
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'x/#', qos: 1 }] });
    await a.next('suback');
    await broker.hub.publishAsync('x/open', 'open');
    await broker.hub.publishAsync('x/closed', 'closed');
    await a.next('publish');
    await a.next('publish');
    a.socket.destroy();
    const b = await RawMqtt.open(broker.mqttPort);
    // The same user, a narrower token: x/closed is no longer hers to read.
    expect(await connect(b, await token('bea', { sub: ['x/open'], pub: [] }))).toMatchObject({ returnCode: 0, sessionPresent: true });
    await settled(b);
    expect(b.published).toEqual(['"open"']);
    b.socket.destroy();
  });
});

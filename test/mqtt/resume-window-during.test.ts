// What a client does while a resumed session's resends are still going out (a window at a time, session.ts resume):
// it subscribes again (as many clients do on every connect), it leaves, its QoS 2 flows are half done.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { ackPublishes, payloadsOf, persistentConnect, RawMqtt, resumeSession, unackedSession } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

const MAILBOX = 24; // window: 6
let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0, mailboxSize: MAILBOX });
});
afterAll(() => broker.close());

const payload = (p: Packet) => (p as { payload: Buffer }).payload.toString();
const publishes = (c: RawMqtt) => c.packets.filter((p) => p.cmd === 'publish');

/** A session on `filter` left with 10 messages of `topic` unacknowledged (more than a window). */
async function leaveUnacked(web: TestClient, clientId: string, filter: string, topic: string): Promise<void> {
  const a = await unackedSession(broker.mqttPort, web, clientId, filter, topic, 10);
  a.socket.destroy();
  await until(() => broker.hub.isNameFree(clientId), 'the first connection gone');
}

describe('the resend window', () => {
  it('a client that subscribes again while its resends go out (as many do on every connect) loses nothing, and nothing overtakes a resend', async () => {
    const web = await TestClient.connect(broker.url);
    await leaveUnacked(web, 'rw-sub', 'rw1/t', 'rw1/t');
    await web.request({ op: 'pub', topic: 'rw1/t', data: 'away' });
    const b = await resumeSession(broker.mqttPort, 'rw-sub');
    await until(() => publishes(b).length === 6, 'the first window of resends');
    // Before acknowledging anything: SUBSCRIBE to the session's own filter again.
    b.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'rw1/t', qos: 1 }] } as Packet);
    await web.request({ op: 'pub', topic: 'rw1/t', data: 'live' });
    const got: Packet[] = [];
    await ackPublishes(b, got, () => payloadsOf(got).includes('"away"') && payloadsOf(got).includes('"live"'), 'the message published while away, and the live one', 5000);
    expect(payloadsOf(got)).toEqual([...Array.from({ length: 10 }, (_, i) => String(i + 1)), '"away"', '"live"']);
    b.socket.destroy();
    web.close();
  });

  it('a client that leaves in the middle of its resends still resumes what was published on a new topic while it was away', async () => {
    const web = await TestClient.connect(broker.url);
    await leaveUnacked(web, 'rw-mid', 'rw2/#', 'rw2/a');
    await web.request({ op: 'pub', topic: 'rw2/new', data: 'away on a new topic' });
    const b = await resumeSession(broker.mqttPort, 'rw-mid');
    await until(() => publishes(b).length === 6, 'the first window of resends');
    b.socket.destroy(); // gone before acknowledging the window: its filters were never resumed
    await until(() => broker.hub.isNameFree('rw-mid'), 'the second connection gone');
    const c = await resumeSession(broker.mqttPort, 'rw-mid');
    const got: Packet[] = [];
    await ackPublishes(c, got, () => payloadsOf(got).includes('"away on a new topic"'), 'the message published on a new topic while away', 5000);
    expect(payloadsOf(got)).toEqual([...Array.from({ length: 10 }, (_, i) => String(i + 1)), '"away on a new topic"']);
    c.socket.destroy();
    web.close();
  });
});

describe('the resend window, QoS 2', () => {
  it('released ids get PUBREL, the others PUBLISH DUP, each completed once; then what came while away', async () => {
    const web = await TestClient.connect(broker.url);
    const a = await RawMqtt.open(broker.mqttPort);
    a.send(persistentConnect('rw-q2'));
    await a.next('connack');
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rw3/t', qos: 2 }] } as Packet);
    await a.next('suback');
    for (let i = 1; i <= 10; i++) await web.request({ op: 'pub', topic: 'rw3/t', data: i, qos: 2 });
    await until(() => publishes(a).length === 10, 'ten messages in flight');
    const first = publishes(a).map((p) => (p as { messageId: number }).messageId);
    for (const pid of first.slice(0, 5)) a.send({ cmd: 'pubrec', messageId: pid } as Packet); // 1-5 received
    await until(() => a.packets.filter((p) => p.cmd === 'pubrel').length === 5, 'five PUBRELs');
    a.socket.destroy();
    await until(() => broker.hub.isNameFree('rw-q2'), 'the first connection gone');
    await web.request({ op: 'pub', topic: 'rw3/t', data: 'away', qos: 2 });
    const b = await RawMqtt.open(broker.mqttPort);
    b.send(persistentConnect('rw-q2'));
    expect(await b.next('connack')).toMatchObject({ sessionPresent: true });
    const rels: number[] = [];
    const got: string[] = [];
    await until(() => {
      for (let p = b.packets.shift(); p; p = b.packets.shift()) {
        const pid = (p as { messageId: number }).messageId;
        if (p.cmd === 'pubrel') rels.push(pid), b.send({ cmd: 'pubcomp', messageId: pid } as Packet);
        if (p.cmd === 'publish') got.push(payload(p)), b.send({ cmd: 'pubrec', messageId: pid } as Packet);
      }
      return got.includes('"away"') && rels.length === 11;
    }, 'every PUBREL and the message published while away');
    expect(rels.slice(0, 5)).toEqual(first.slice(0, 5));
    expect(got).toEqual(['6', '7', '8', '9', '10', '"away"']);
    b.socket.destroy();
    web.close();
  });
});

// MQTT session state and ordering that a client only sees across a reconnect or in one burst: QoS 2 exactly once
// over a resumed session, retained publishes kept in the order they were made whatever their QoS, No Local kept with
// the session, a will's own QoS. Over real sockets, raw packets (test/helpers/raw-mqtt.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());

const connect = (clientId: string, clean: boolean, version: 4 | 5 = 4, extra: Partial<Packet> = {}) =>
  ({ cmd: 'connect', clientId, keepalive: 0, clean, protocolId: 'MQTT', protocolVersion: version, ...extra }) as Packet;
const publish = (topic: string, payload: string, qos: 0 | 1 | 2, messageId?: number, more: Partial<Packet> = {}) =>
  ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, ...(messageId !== undefined && { messageId }), dup: false, retain: false, ...more }) as Packet;

describe('session state across a reconnect', () => {
  it('QoS 2 exactly once: a PUBLISH resent (DUP) after the session resumed, before PUBREL, is not published again', async () => {
    const web = await TestClient.connect(`${broker.url}?topics=q2/once`);
    const a = await RawMqtt.open(broker.mqttPort);
    a.send(connect('q2-pub', false));
    await a.next('connack');
    a.send(publish('q2/once', '"once"', 2, 7));
    await a.next('pubrec'); // the broker has it; this PUBREC is lost on the way, as far as the client knows
    a.socket.destroy();
    const b = await RawMqtt.open(broker.mqttPort);
    b.send(connect('q2-pub', false)); // waits for the first connection's session to be kept
    expect(await b.next('connack')).toMatchObject({ sessionPresent: true });
    // [MQTT-4.3.3]: the client sends the PUBLISH again, DUP, same packet id; the session knows it was received.
    b.send(publish('q2/once', '"once"', 2, 7, { dup: true }));
    await b.next('pubrec');
    b.send({ cmd: 'pubrel', messageId: 7 } as Packet);
    await b.next('pubcomp');
    b.send(publish('q2/once', '"after"', 1, 8));
    await b.next('puback');
    await web.next((f) => f.op === 'msg' && f.data === 'after');
    expect(web.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['once', 'after']); // it was 'once' twice
    b.socket.destroy();
    web.close();
  });

  it('5.0 No Local is part of the session: after a resume the client does not get its own publishes back', async () => {
    const v5 = { properties: { sessionExpiryInterval: 300 } } as Partial<Packet>;
    const a = await RawMqtt.open(broker.mqttPort, 5);
    a.send(connect('nl-1', true, 5, v5), 5);
    await a.next('connack');
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'nl/own', qos: 1, nl: true }] } as Packet, 5);
    await a.next('suback');
    a.socket.destroy();
    const b = await RawMqtt.open(broker.mqttPort, 5);
    b.send(connect('nl-1', false, 5, v5), 5);
    expect(await b.next('connack')).toMatchObject({ sessionPresent: true });
    b.send(publish('nl/own', 'mine', 1, 1), 5);
    await b.next('puback');
    const web = await TestClient.connect(broker.url);
    await web.request({ op: 'pub', topic: 'nl/own', data: 'other' });
    // The first PUBLISH it gets is the other client's: its own 'mine' (published first, same topic) did not come back.
    expect(((await b.next('publish')) as { payload: Buffer }).payload.toString()).toBe('"other"');
    b.socket.destroy();
    web.close();
  });
  it('5.0 No Local on resume: the client\'s own publish of its previous connection is not replayed to it', async () => {
    const v5 = { properties: { sessionExpiryInterval: 300 } } as Partial<Packet>;
    const web = await TestClient.connect(broker.url);
    const a = await RawMqtt.open(broker.mqttPort, 5);
    a.send(connect('nl-2', true, 5, v5), 5);
    await a.next('connack');
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'nl/prev', qos: 1, nl: true }] } as Packet, 5);
    await a.next('suback');
    await web.request({ op: 'pub', topic: 'nl/prev', data: 'before' });
    expect(((await a.next('publish')) as { payload: Buffer }).payload.toString()).toBe('"before"');
    a.send({ cmd: 'puback', messageId: 1 } as Packet, 5);
    // Its own publish, not delivered to it (No Local): its position stays before it. Then it leaves.
    a.send(publish('nl/prev', 'mine', 1, 9), 5);
    await a.next('puback');
    a.socket.destroy();
    await a.closed;
    await web.request({ op: 'pub', topic: 'nl/prev', data: 'away' });
    const b = await RawMqtt.open(broker.mqttPort, 5);
    b.send(connect('nl-2', false, 5, v5), 5);
    expect(await b.next('connack')).toMatchObject({ sessionPresent: true });
    await web.request({ op: 'pub', topic: 'nl/prev', data: 'live' });
    await until(() => b.published.includes('"live"'), 'the live message');
    // The resume replays what others published while it was away, not its own 'mine'.
    expect(b.published).toEqual(['"away"', '"live"']);
    b.socket.destroy();
    web.close();
  });
});

describe('what a resume replays, and what it does not replay again', () => {
  it('a message missed while away on a topic two of the session\'s filters match comes once (as live messages do)', async () => {
    const a = await RawMqtt.open(broker.mqttPort);
    a.send(connect('ov-sub', false));
    await a.next('connack');
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ov/#', qos: 1 }, { topic: 'ov/a', qos: 1 }] } as Packet);
    await a.next('suback');
    a.socket.destroy();
    const web = await TestClient.connect(broker.url);
    const b = await RawMqtt.open(broker.mqttPort);
    await web.request({ op: 'pub', topic: 'ov/a', data: 'away' }); // before the session is back: kept before the claim
    b.send(connect('ov-sub', false));
    expect(await b.next('connack')).toMatchObject({ sessionPresent: true });
    await web.request({ op: 'pub', topic: 'ov/a', data: 'live' });
    await until(() => b.published.includes('"live"'), 'the live message');
    expect(b.published).toEqual(['"away"', '"live"']); // 'away' came twice, once per filter
    b.socket.destroy();
    web.close();
  });

  it('a session that got messages on more topics than it keeps positions for (1,000) does not get them again on resume', async () => {
    const a = await RawMqtt.open(broker.mqttPort);
    a.send(connect('many-sub', false));
    await a.next('connack');
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'many/#', qos: 0 }] } as Packet);
    await a.next('suback');
    const web = await TestClient.connect(broker.url);
    for (let i = 0; i < 1100; i++) web.send({ op: 'pub', topic: `many/${i}`, data: i });
    await until(() => a.published.length === 1100, 'all 1,100 messages', 20_000);
    a.socket.destroy();
    const b = await RawMqtt.open(broker.mqttPort);
    b.send(connect('many-sub', false));
    expect(await b.next('connack')).toMatchObject({ sessionPresent: true });
    await web.request({ op: 'pub', topic: 'many/after', data: 'after' });
    await until(() => b.published.includes('"after"'), 'a message after the resume');
    expect(b.published).toEqual(['"after"']); // the 100 whose positions were dropped came again, from their start
    b.socket.destroy();
    web.close();
  });
});

describe('retained publishes of one burst', () => {
  /** What a new subscriber of `topic` gets as retained: read once a retained marker on another topic has come. */
  async function retainedOf(topic: string, marker: string): Promise<string[]> {
    const s = await RawMqtt.open(broker.mqttPort);
    s.send(connect(`reader-${topic}`, true));
    await s.next('connack');
    s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] } as Packet);
    await s.next('suback');
    s.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: marker, qos: 1 }] } as Packet);
    await until(() => s.published.includes('m'), `the retained marker on ${marker}`);
    s.socket.destroy();
    return s.published.filter((p) => p !== 'm');
  }

  it('an empty retained QoS 0 publish (a clear) after a retained QoS 1 one in the same read clears it', async () => {
    const a = await RawMqtt.open(broker.mqttPort);
    a.send(connect('ret-clear', true));
    await a.next('connack');
    a.sendAll([publish('ret/clear', 'old', 1, 1, { retain: true }), publish('ret/clear', '', 0, undefined, { retain: true }), publish('ret/mark1', 'm', 1, 2, { retain: true })]);
    // The last PUBACK comes once every retained write before it is done (they are kept in order).
    await until(() => a.packets.filter((p) => p.cmd === 'puback').length === 2, 'both PUBACKs');
    expect(await retainedOf('ret/clear', 'ret/mark1')).toEqual([]); // 'old' came back: the clear was kept first
    a.socket.destroy();
  });

  it('a newer retained QoS 0 publish after a retained QoS 1 one in the same read is the one kept', async () => {
    const a = await RawMqtt.open(broker.mqttPort);
    a.send(connect('ret-new', true));
    await a.next('connack');
    a.sendAll([publish('ret/new', 'old', 1, 1, { retain: true }), publish('ret/new', 'new', 0, undefined, { retain: true }), publish('ret/mark2', 'm', 1, 2, { retain: true })]);
    await until(() => a.packets.filter((p) => p.cmd === 'puback').length === 2, 'both PUBACKs');
    expect(await retainedOf('ret/new', 'ret/mark2')).toEqual(['new']);
    a.socket.destroy();
  });
});

describe('wills', () => {
  it("a will's QoS is the highest its subscribers get it at: a QoS 0 will reaches a QoS 2 subscriber at QoS 0", async () => {
    const w = await RawMqtt.open(broker.mqttPort);
    w.send(connect('will-watch', true));
    await w.next('connack');
    w.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'will/q', qos: 2 }] } as Packet);
    await w.next('suback');
    const d = await RawMqtt.open(broker.mqttPort);
    d.send(connect('will-dev', true, 4, { will: { topic: 'will/q', payload: Buffer.from('gone'), qos: 0, retain: false } } as Partial<Packet>));
    await d.next('connack');
    d.socket.destroy();
    expect(await w.next('publish')).toMatchObject({ qos: 0 }); // it came at QoS 2
    w.socket.destroy();
  });
});

// MQTT 5.0 Subscription Identifiers (§3.8.2.1.2, §3.3.4) over real sockets with mqtt-packet: a SUBSCRIBE's identifier
// is stored with each of its filters, and every PUBLISH sent to the client carries the identifiers of all its
// matching subscriptions that have one (one copy, several properties) [MQTT-3.3.4-3] [MQTT-3.3.4-4]: live, retained
// for a new subscription, waiting for the Receive Maximum, replayed or resent (DUP) on resume, on one node and across
// two. A resubscribe without one removes it; 0, or two in one SUBSCRIBE, is a protocol error (DISCONNECT 0x82). They
// used to be refused (SUBACK 0xA1, CONNACK said not available).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';
import { mqttNodes, requireRedis } from '../cluster/redis.js';

interface Sub {
  topic: string;
  qos?: 0 | 1 | 2;
  nl?: boolean;
  rh?: 0 | 1 | 2;
}

async function connect(port: number, clientId: string, o: { expiry?: number; clean?: boolean; version?: 4 | 5; receiveMaximum?: number } = {}): Promise<{ c: RawMqtt; connack: Packet }> {
  const version = o.version ?? 5;
  const c = await RawMqtt.open(port, version);
  const properties = { ...(o.expiry !== undefined && { sessionExpiryInterval: o.expiry }), ...(o.receiveMaximum !== undefined && { receiveMaximum: o.receiveMaximum }) };
  c.send({ cmd: 'connect', clientId, keepalive: 0, clean: o.clean ?? true, protocolId: 'MQTT', protocolVersion: version, ...(version === 5 && { properties }) } as Packet, version);
  return { c, connack: await c.next('connack') };
}

/** Subscribes `c` to `subs` (QoS 1 unless said) with Subscription Identifier `id` (none: undefined); resolves with the SUBACK's codes. */
async function subscribe(c: RawMqtt, subs: Sub[], id: number | undefined, messageId = 1, version: 4 | 5 = 5): Promise<number[]> {
  c.send({ cmd: 'subscribe', messageId, subscriptions: subs.map((s) => ({ qos: 1, ...s })), ...(id !== undefined && { properties: { subscriptionIdentifier: id } }) } as Packet, version);
  return ((await c.next('suback')) as { granted: number[] }).granted;
}

/** Publishes `text` on `topic` from `c` (QoS 1 unless said), waiting for its PUBACK. */
async function publish(c: RawMqtt, topic: string, text: string, o: { qos?: 0 | 1; retain?: boolean; messageId?: number; properties?: Record<string, unknown> } = {}): Promise<void> {
  const qos = o.qos ?? 1;
  c.send({ cmd: 'publish', topic, payload: Buffer.from(text), qos, retain: o.retain ?? false, dup: false, ...(qos > 0 && { messageId: o.messageId ?? 1 }), ...(o.properties && { properties: o.properties }) } as Packet, 5);
  if (qos === 1) await c.next('puback');
}

/** The next PUBLISH `c` got (acknowledged), as its payload and Subscription Identifiers (sorted; none: []). */
async function next(c: RawMqtt, version: 4 | 5 = 5): Promise<{ text: string; ids: number[]; packet: IPublishPacket }> {
  const p = (await c.next('publish')) as IPublishPacket;
  if (p.qos === 1) c.send({ cmd: 'puback', messageId: p.messageId } as Packet, version);
  const raw = p.properties?.subscriptionIdentifier;
  const ids = raw === undefined ? [] : Array.isArray(raw) ? [...raw].sort((x, y) => x - y) : [raw];
  return { text: p.payload.toString(), ids, packet: p };
}

/** A PINGREQ answered: what the broker sent `c` before it has arrived (nothing more is on its way). */
async function barrier(c: RawMqtt, version: 4 | 5 = 5): Promise<void> {
  c.send({ cmd: 'pingreq' } as Packet, version);
  await c.next('pingresp');
}

describe('Subscription Identifiers on one node', () => {
  let broker: TestBroker;
  let pub: RawMqtt;
  beforeAll(async () => {
    broker = await startTestBroker({ mqttPort: 0 });
    pub = (await connect(broker.mqttPort, 'sid-pub')).c;
  });
  afterAll(async () => {
    pub.socket.destroy();
    await broker.close();
  });

  it('CONNACK says they are available; a live message through the filter carries the identifier, at QoS 0 and 1', async () => {
    const { c, connack } = await connect(broker.mqttPort, 'sid1');
    expect(connack).toMatchObject({ reasonCode: 0, properties: { subscriptionIdentifiersAvailable: true } });
    expect(await subscribe(c, [{ topic: 'sid/1/a' }, { topic: 'sid/1/b', qos: 0 }], 268_435_455)).toEqual([1, 0]);
    await publish(pub, 'sid/1/a', 'one');
    await publish(pub, 'sid/1/b', 'zero', { qos: 0 });
    expect(await next(c)).toMatchObject({ text: 'one', ids: [268_435_455] });
    expect(await next(c)).toMatchObject({ text: 'zero', ids: [268_435_455] });
    c.socket.destroy();
  });

  it('several matching subscriptions: one copy carrying the identifier of each that has one, as separate properties', async () => {
    const { c } = await connect(broker.mqttPort, 'sid2');
    await subscribe(c, [{ topic: 'sid/2/+' }], 2, 1);
    await subscribe(c, [{ topic: 'sid/2/#' }], 3, 2);
    await subscribe(c, [{ topic: 'sid/2/x' }], undefined, 3);
    await publish(pub, 'sid/2/x', 'both');
    await publish(pub, 'sid/2/y/z', 'hash only', { qos: 0 });
    expect(await next(c)).toMatchObject({ text: 'both', ids: [2, 3] });
    expect(await next(c)).toMatchObject({ text: 'hash only', ids: [3] });
    await barrier(c);
    expect(c.published).toEqual([]);
    c.socket.destroy();
  });

  it('QoS 0 subscribers of one message each get their own identifiers (the shared packet is shared only among equal ones)', async () => {
    const subs = await Promise.all(['sid3-a', 'sid3-b', 'sid3-c', 'sid3-d', 'sid3-e'].map(async (id) => (await connect(broker.mqttPort, id)).c));
    const ids = [5, 5, undefined, 6, undefined];
    for (const [i, c] of subs.entries()) await subscribe(c, [{ topic: 'sid/3', qos: 0 }], ids[i]);
    const v4 = (await connect(broker.mqttPort, 'sid3-v4', { version: 4 })).c;
    await subscribe(v4, [{ topic: 'sid/3', qos: 0 }], undefined, 1, 4);
    await publish(pub, 'sid/3', 'shared', { qos: 0 });
    const got = await Promise.all(subs.map((c) => next(c)));
    expect(got.map((g) => g.ids)).toEqual([[5], [5], [], [6], []]);
    expect(await next(v4, 4)).toMatchObject({ text: 'shared', ids: [] });
    for (const c of [...subs, v4]) c.socket.destroy();
  });

  it('a resubscribe without an identifier removes it; with another replaces it; an UNSUBSCRIBE drops it', async () => {
    const { c } = await connect(broker.mqttPort, 'sid4');
    await subscribe(c, [{ topic: 'sid/4' }], 7, 1);
    await publish(pub, 'sid/4', 'seven');
    expect(await next(c)).toMatchObject({ text: 'seven', ids: [7] });
    await subscribe(c, [{ topic: 'sid/4' }], undefined, 2);
    await publish(pub, 'sid/4', 'none');
    expect(await next(c)).toMatchObject({ text: 'none', ids: [] });
    await subscribe(c, [{ topic: 'sid/4' }], 8, 3);
    await publish(pub, 'sid/4', 'eight');
    expect(await next(c)).toMatchObject({ text: 'eight', ids: [8] });
    c.send({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['sid/4'] } as Packet, 5);
    await c.next('unsuback');
    await subscribe(c, [{ topic: 'sid/4' }], undefined, 5);
    await publish(pub, 'sid/4', 'again');
    expect(await next(c)).toMatchObject({ text: 'again', ids: [] });
    c.socket.destroy();
  });

  it('a new subscription\'s retained messages carry its identifier; a message with an expiry keeps it beside the ids', async () => {
    await publish(pub, 'sid/5/kept', 'retained', { retain: true });
    const { c } = await connect(broker.mqttPort, 'sid5');
    await subscribe(c, [{ topic: 'sid/5/+' }], 11);
    expect(await next(c)).toMatchObject({ text: 'retained', ids: [11], packet: { retain: true } });
    await publish(pub, 'sid/5/live', 'expiring', { qos: 0, properties: { messageExpiryInterval: 60 } });
    const got = await next(c);
    expect(got).toMatchObject({ text: 'expiring', ids: [11] });
    expect(got.packet.properties?.messageExpiryInterval).toBeGreaterThan(0);
    await publish(pub, 'sid/5/kept', '', { retain: true }); // cleared
    await next(c);
    c.socket.destroy();
  });

  it('No Local leaves out its own filter\'s identifier for the client\'s own message', async () => {
    const { c } = await connect(broker.mqttPort, 'sid6');
    await subscribe(c, [{ topic: 'sid/6/#', nl: true }], 1, 1);
    await subscribe(c, [{ topic: 'sid/6/+' }], 2, 2);
    await publish(c, 'sid/6/a', 'own', { messageId: 10 });
    expect(await next(c)).toMatchObject({ text: 'own', ids: [2] });
    c.socket.destroy();
  });

  it('a message waiting for the client\'s Receive Maximum goes out with its identifiers', async () => {
    const { c } = await connect(broker.mqttPort, 'sid7', { receiveMaximum: 1 });
    await subscribe(c, [{ topic: 'sid/7' }], 70);
    await publish(pub, 'sid/7', 'first', { messageId: 1 });
    await publish(pub, 'sid/7', 'second', { messageId: 2 });
    const first = (await c.next('publish')) as IPublishPacket;
    await barrier(c);
    expect(c.published).toEqual([]); // the second waits for the first's PUBACK
    c.send({ cmd: 'puback', messageId: first.messageId } as Packet, 5);
    expect(await next(c)).toMatchObject({ text: 'second', ids: [70] });
    c.socket.destroy();
  });

  it('a persistent session keeps them: a resume resends (DUP) and replays with them, and live ones carry them', async () => {
    const first = (await connect(broker.mqttPort, 'sid8', { expiry: 300 })).c;
    await subscribe(first, [{ topic: 'sid/8/#' }], 80);
    await publish(pub, 'sid/8/a', 'unacked');
    await until(() => first.published.includes('unacked'), 'the message');
    first.socket.destroy(); // never acknowledged
    await first.closed;
    await publish(pub, 'sid/8/b', 'away');
    const again = await connect(broker.mqttPort, 'sid8', { expiry: 300, clean: false });
    expect(again.connack).toMatchObject({ sessionPresent: true });
    const resent = await next(again.c);
    expect(resent).toMatchObject({ text: 'unacked', ids: [80], packet: { dup: true } });
    expect(await next(again.c)).toMatchObject({ text: 'away', ids: [80] });
    await publish(pub, 'sid/8/c', 'live');
    expect(await next(again.c)).toMatchObject({ text: 'live', ids: [80] });
    again.c.socket.destroy();
  });

  it('identifier 0 is a protocol error: DISCONNECT 0x82, nothing subscribed', async () => {
    const { c } = await connect(broker.mqttPort, 'sid9');
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sid/9', qos: 1 }], properties: { subscriptionIdentifier: 0 } } as Packet, 5);
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
    await c.closed;
    expect(c.packets.filter((p) => p.cmd === 'suback')).toEqual([]);
  });

  it('two identifiers in one SUBSCRIBE are a protocol error: DISCONNECT 0x82', async () => {
    const { c } = await connect(broker.mqttPort, 'sid10');
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sid/10', qos: 1 }], properties: { subscriptionIdentifier: [4, 5] } } as unknown as Packet, 5); // the codec's types allow one; it writes each
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
    await c.closed;
  });

  it('a WebSocket publish reaches the filter with its identifier too', async () => {
    const { c } = await connect(broker.mqttPort, 'sid11');
    await subscribe(c, [{ topic: 'sid/11' }], 110);
    const web = await TestClient.connect(broker.url);
    await web.request({ op: 'pub', topic: 'sid/11', data: 'ws' });
    expect(await next(c)).toMatchObject({ text: '"ws"', ids: [110] });
    c.socket.destroy();
    web.close();
  });
});

const run = requireRedis('Subscription Identifiers on a cluster');

describe.skipIf(!run)('Subscription Identifiers across two nodes of one Redis', () => {
  let a: TestBroker;
  let b: TestBroker;
  const nodes = mqttNodes();
  beforeAll(() => void ({ a, b } = nodes));

  it('a publish on A reaches B with them; a session left on B resumes on A with them (resend, replay, live)', async () => {
    const pub = (await connect(a.mqttPort, 'sidc-pub')).c;
    const onB = (await connect(b.mqttPort, 'sidc1', { expiry: 300 })).c;
    await subscribe(onB, [{ topic: 'sidc/+' }], 21, 1);
    await subscribe(onB, [{ topic: 'sidc/#' }], 22, 2);
    await publish(pub, 'sidc/x', 'live', { messageId: 1 });
    expect(await next(onB)).toMatchObject({ text: 'live', ids: [21, 22] });
    await publish(pub, 'sidc/x', 'unacked', { messageId: 2 });
    await until(() => onB.published.includes('unacked'), 'the message');
    onB.socket.destroy(); // never acknowledged
    await onB.closed;
    await publish(pub, 'sidc/y/z', 'away', { messageId: 3 });
    const onA = await connect(a.mqttPort, 'sidc1', { expiry: 300, clean: false });
    expect(onA.connack).toMatchObject({ sessionPresent: true });
    expect(await next(onA.c)).toMatchObject({ text: 'unacked', ids: [21, 22], packet: { dup: true } });
    expect(await next(onA.c)).toMatchObject({ text: 'away', ids: [22] });
    await publish(pub, 'sidc/x', 'after', { messageId: 4 });
    expect(await next(onA.c)).toMatchObject({ text: 'after', ids: [21, 22] });
    for (const c of [onA.c, pub]) c.socket.destroy();
  });
});

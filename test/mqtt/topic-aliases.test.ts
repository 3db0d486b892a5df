// Topic aliases (MQTT 5.0), both ways. From the broker: a client whose CONNECT allows them gets a topic's name once,
// then an empty topic and the alias, for as many topics as it allows (at most SERVER_ALIASES_MAX); a client that does
// not allow them gets names only. From a client: CONNACK allows CLIENT_ALIASES_MAX; a PUBLISH naming a topic with an
// alias sets it, one with an empty topic uses it, for this connection only. Raw packets over real sockets, and the
// mqtt npm client, which sets and resolves aliases itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { CLIENT_ALIASES_MAX, ServerAliases } from '../../src/transports/mqtt/aliases.js';
import mqttPacket from 'mqtt-packet';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(async () => {
  await broker?.close();
});

type Publish = Packet & { topic: string; messageId?: number; qos: number; payload: Buffer; properties?: { topicAlias?: number } };

/** A raw 5.0 subscriber of `filter` at QoS 1, with `properties` on its CONNECT. */
async function subscriber(clientId: string, filter: string, properties: Record<string, unknown> = {}): Promise<RawMqtt> {
  const c = await RawMqtt.open(broker.mqttPort, 5);
  c.send({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5, properties } as Packet, 5);
  await c.next('connack');
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] } as Packet, 5);
  await c.next('suback');
  return c;
}

/** The next `n` PUBLISHes `c` gets, each acknowledged (QoS 1). */
async function publishes(c: RawMqtt, n: number): Promise<Publish[]> {
  const got: Publish[] = [];
  for (let i = 0; i < n; i++) {
    const p = (await c.next('publish')) as Publish;
    if (p.qos === 1) c.send({ cmd: 'puback', messageId: p.messageId } as Packet, 5);
    got.push(p);
  }
  return got;
}

describe('server topic aliases', () => {
  it('a client allowing two aliases gets its first two topics\' names once, then empty topics with the alias; the third topic by name', async () => {
    const aliased = await subscriber('alias-2', 'al/#', { topicAliasMaximum: 2 });
    const plain = await subscriber('alias-none', 'al/#');
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'alias-pub', reconnectPeriod: 0 });
    const sequence: [string, 0 | 1][] = [['al/1', 0], ['al/1', 1], ['al/2', 1], ['al/3', 0], ['al/2', 0], ['al/3', 1], ['al/1', 1]];
    for (const [topic, qos] of sequence) await pub.publishAsync(topic, `${topic} q${qos}`, { qos });
    const got = await publishes(aliased, sequence.length);
    expect(got.map((p) => [p.topic, p.properties?.topicAlias])).toEqual([
      ['al/1', 1],
      ['', 1],
      ['al/2', 2],
      ['al/3', undefined],
      ['', 2],
      ['al/3', undefined],
      ['', 1],
    ]);
    expect(got.map((p) => p.payload.toString())).toEqual(sequence.map(([t, q]) => `${t} q${q}`));
    expect(got.map((p) => p.qos)).toEqual(sequence.map(([, q]) => q));
    // Without a Topic Alias Maximum: every topic by name, no alias.
    const named = await publishes(plain, sequence.length);
    expect(named.map((p) => [p.topic, p.properties?.topicAlias])).toEqual(sequence.map(([t]) => [t, undefined]));
    await pub.endAsync();
    for (const c of [aliased, plain]) c.send({ cmd: 'disconnect' } as Packet, 5);
  });

  it('the mqtt npm client with a Topic Alias Maximum reads every message under its own topic, retained ones too', async () => {
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'alias-pub2', reconnectPeriod: 0 });
    await pub.publishAsync('am/kept', 'retained', { qos: 1, retain: true });
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'alias-npm', reconnectPeriod: 0, protocolVersion: 5, properties: { topicAliasMaximum: 3 } });
    const heard: [string, string][] = [];
    sub.on('message', (topic, payload) => heard.push([topic, payload.toString()]));
    await sub.subscribeAsync('am/#', { qos: 1 });
    const topics = ['am/a', 'am/b', 'am/a', 'am/kept', 'am/c', 'am/d', 'am/a', 'am/d'];
    for (const [i, t] of topics.entries()) await pub.publishAsync(t, `m${i}`, { qos: (i % 2) as 0 | 1 });
    const deadline = Date.now() + 5000;
    while (heard.length < topics.length + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(heard).toEqual([['am/kept', 'retained'], ...topics.map((t, i) => [t, `m${i}`])]);
    await Promise.all([pub.endAsync(), sub.endAsync()]);
  });

  it('ServerAliases splices the alias into a PUBLISH built for everyone (copied, never changed), at QoS 0 and above, with other properties kept', () => {
    const aliases = new ServerAliases(10);
    for (const qos of [0, 1, 2] as const) {
      const topic = `unit/${qos}`;
      const built = mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('x'.repeat(200)), qos, messageId: qos ? 7 : undefined, dup: false, retain: false, properties: { userProperties: { a: 'b' }, subscriptionIdentifier: [3] } } as Packet, { protocolVersion: 5 });
      const copy = Buffer.from(built);
      const first = aliases.apply(built);
      expect(built).toEqual(copy);
      aliases.sent(first.assigned!);
      const again = aliases.apply(built);
      expect(again.assigned).toBeUndefined();
      for (const [bytes, expectTopic] of [[first.packet, topic], [again.packet, '']] as const) {
        const parsed: Packet[] = [];
        const parser = mqttPacket.parser({ protocolVersion: 5 });
        parser.on('packet', (p: Packet) => parsed.push(p));
        parser.on('error', (err: Error) => { throw err; });
        parser.parse(bytes);
        expect(parsed[0]).toMatchObject({ cmd: 'publish', topic: expectTopic, qos, payload: Buffer.from('x'.repeat(200)), properties: { topicAlias: first.assigned![1], userProperties: { a: 'b' }, subscriptionIdentifier: 3 } });
        if (qos) expect((parsed[0] as Publish).messageId).toBe(7);
      }
    }
  });

  it('from a client: an alias set with a topic names it on later PUBLISHes with an empty topic, on this connection only; 0, over the maximum, or unknown closes', async () => {
    const sub = await subscriber('alias-in-sub', 'ai/#');
    const c = await RawMqtt.open(broker.mqttPort, 5);
    c.send({ cmd: 'connect', clientId: 'alias-in', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5 } as Packet, 5);
    expect(await c.next('connack')).toMatchObject({ reasonCode: 0, properties: { topicAliasMaximum: CLIENT_ALIASES_MAX } });
    const send = (topic: string, payload: string, alias?: number, qos: 0 | 1 = 0, messageId?: number) =>
      c.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, messageId, dup: false, retain: false, ...(alias !== undefined && { properties: { topicAlias: alias } }) } as Packet, 5);
    send('ai/one', 'a', 1);
    send('', 'b', 1, 1, 1);
    expect(await c.next('puback')).toMatchObject({ messageId: 1 });
    send('ai/two', 'c', 1); // the alias now names another topic
    send('', 'd', 1);
    send('ai/three', 'e', CLIENT_ALIASES_MAX);
    send('', 'f', CLIENT_ALIASES_MAX);
    const got = await publishes(sub, 6);
    expect(got.map((p) => [p.topic, p.payload.toString()])).toEqual([['ai/one', 'a'], ['ai/one', 'b'], ['ai/two', 'c'], ['ai/two', 'd'], ['ai/three', 'e'], ['ai/three', 'f']]);
    // An alias the connection never set: a protocol error (0x82).
    send('', 'g', 2);
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
    await c.closed;
    // Aliases are the connection's: a new connection of the same client starts without them.
    const again = await RawMqtt.open(broker.mqttPort, 5);
    again.send({ cmd: 'connect', clientId: 'alias-in', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5 } as Packet, 5);
    await again.next('connack');
    again.send({ cmd: 'publish', topic: '', payload: Buffer.from('h'), qos: 0, dup: false, retain: false, properties: { topicAlias: 1 } } as Packet, 5);
    expect(await again.next('disconnect')).toMatchObject({ reasonCode: 0x82 });
    for (const alias of [0, CLIENT_ALIASES_MAX + 1]) {
      const bad = await RawMqtt.open(broker.mqttPort, 5);
      bad.send({ cmd: 'connect', clientId: `alias-bad-${alias}`, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5 } as Packet, 5);
      await bad.next('connack');
      bad.send({ cmd: 'publish', topic: 'ai/x', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { topicAlias: alias } } as Packet, 5);
      expect(await bad.next('disconnect')).toMatchObject({ reasonCode: 0x94 });
    }
    sub.send({ cmd: 'disconnect' } as Packet, 5);
  });

  it('the mqtt npm client with automatic topic aliases on its publishes: every message arrives under its topic', async () => {
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'alias-npm-sub', reconnectPeriod: 0 });
    const heard: [string, string][] = [];
    sub.on('message', (topic, payload) => heard.push([topic, payload.toString()]));
    await sub.subscribeAsync('an/#', { qos: 1 });
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'alias-npm-pub', reconnectPeriod: 0, protocolVersion: 5, autoUseTopicAlias: true, autoAssignTopicAlias: true });
    const topics = ['an/a', 'an/b', 'an/a', 'an/a', 'an/b', 'an/c'];
    for (const [i, t] of topics.entries()) await pub.publishAsync(t, `n${i}`, { qos: 1 });
    const deadline = Date.now() + 5000;
    while (heard.length < topics.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(heard).toEqual(topics.map((t, i) => [t, `n${i}`]));
    await Promise.all([pub.endAsync(), sub.endAsync()]);
  });
});

describe('server topic aliases under flow control and retained reads', () => {
  it('a client with Receive Maximum 1 and two aliases, subscribing while retained and live messages of four topics flow, reads every message under its topic, in order per topic', async () => {
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'alias-flow-pub', reconnectPeriod: 0 });
    for (const t of ['af/k1', 'af/k2']) await pub.publishAsync(t, `${t} kept`, { qos: 1, retain: true });
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'alias-flow', reconnectPeriod: 0, protocolVersion: 5, properties: { topicAliasMaximum: 2, receiveMaximum: 1 } });
    const errors: Error[] = [];
    sub.on('error', (err) => errors.push(err));
    const heard: [string, string][] = [];
    sub.on('message', (topic, payload) => heard.push([topic, payload.toString()]));
    // Live messages start before the subscription (its retained read) and go on through it; QoS 1 ones wait for the
    // client's one-at-a-time acknowledgements, so packets are built long after their messages arrived.
    const topics = ['af/k1', 'af/l1', 'af/k2', 'af/l2'];
    const sending = (async () => {
      for (let i = 0; i < 40; i++) await pub.publishAsync(topics[i % 4]!, `${topics[i % 4]} ${i}`, { qos: (i % 3 === 0 ? 0 : 1) as 0 | 1 });
    })();
    await sub.subscribeAsync('af/#', { qos: 1 });
    await sending;
    const deadline = Date.now() + 10_000;
    const expected = (t: string) => Array.from({ length: 40 }, (_, i) => i).filter((i) => topics[i % 4] === t);
    const done = () => topics.every((t) => heard.filter(([h]) => h === t).some(([, p]) => p === `${t} ${expected(t).at(-1)}`));
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(errors).toEqual([]);
    expect(sub.connected).toBe(true);
    for (const t of topics) {
      const got = heard.filter(([h]) => h === t).map(([, p]) => p);
      // The live ones in publish order after the subscription took hold (those published before it may be missed),
      // each under its own topic; a retained topic's kept message comes first, once.
      const live = got.filter((p) => !p.endsWith('kept')).map((p) => Number(p.split(' ')[1]));
      expect(live).toEqual([...live].sort((a, b) => a - b));
      expect(live.at(-1)).toBe(expected(t).at(-1));
      expect(got.every((p) => p.startsWith(`${t} `))).toBe(true);
    }
    await Promise.all([pub.endAsync(), sub.endAsync()]);
  });
});

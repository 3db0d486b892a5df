// Malformed or protocol-violating packets the codec lets through: the spec's answer (CONNACK 0x81 / close /
// DISCONNECT 0x81, 0x82), never an accepted CONNECT or a published message (each was let through: found by a review
// helper).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { closedWithin, RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());
const connect = (clientId: string, version: 4 | 5 = 4, extra: Partial<Packet> = {}) =>
  ({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: version, ...extra }) as Packet;

describe('CONNECT', () => {
  it('will QoS 3 is malformed [MQTT-3.1.2-14]: 3.1.1 closed without CONNACK, 5.0 CONNACK 0x81', async () => {
    const will = { topic: 'w/t', payload: Buffer.from('x'), qos: 3, retain: false };
    const c4 = await RawMqtt.open(broker.mqttPort);
    c4.send(connect('wq3-4', 4, { will } as Partial<Packet>));
    expect(await closedWithin(c4)).toBe(true);
    expect(c4.packets.map((p) => p.cmd)).toEqual([]);
    const c5 = await RawMqtt.open(broker.mqttPort, 5);
    c5.send(connect('wq3-5', 5, { will } as Partial<Packet>), 5);
    expect(await c5.next('connack')).toMatchObject({ reasonCode: 0x81 });
  });

  it('3.1.1: a password without a user name is a protocol violation [MQTT-3.1.2-22]: closed, not accepted', async () => {
    const body = Buffer.concat([Buffer.from([0, 4]), Buffer.from('MQTT'), Buffer.from([4, 0x40 | 0x02, 0, 0]), Buffer.from([0, 8]), Buffer.from('pwnouser'), Buffer.from([0, 2]), Buffer.from('pw')]);
    const c = await RawMqtt.open(broker.mqttPort);
    c.socket.write(Buffer.concat([Buffer.from([0x10, body.length]), body]));
    expect(await closedWithin(c)).toBe(true);
    expect(c.packets.map((p) => p.cmd)).toEqual([]);
  });
});

describe('PUBLISH', () => {
  it('DUP on a QoS 0 PUBLISH is malformed [MQTT-3.3.1-2]: the connection is closed and nothing is published', async () => {
    const web = await TestClient.connect(`${broker.url}?topics=dup/q0`);
    const c = await RawMqtt.open(broker.mqttPort);
    c.send(connect('dupq0'));
    await c.next('connack');
    const bytes = mqttPacket.generate({ cmd: 'publish', topic: 'dup/q0', payload: Buffer.from('"x"'), qos: 0, dup: false, retain: false } as Packet);
    bytes[0] = bytes[0]! | 0x08;
    c.socket.write(bytes);
    expect(await closedWithin(c)).toBe(true);
    await web.request({ op: 'pub', topic: 'dup/q0', data: 'marker' });
    await web.next((f) => f.op === 'msg' && f.data === 'marker');
    expect(web.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['marker']);
    web.close();
  });

  it('5.0: an empty topic without a topic alias is a protocol error: DISCONNECT 0x82, not PUBACK 0x90', async () => {
    const c = await RawMqtt.open(broker.mqttPort, 5);
    c.send(connect('emptytopic5', 5), 5);
    await c.next('connack');
    c.send({ cmd: 'publish', topic: '', payload: Buffer.from('1'), qos: 1, messageId: 3, dup: false, retain: false } as Packet, 5);
    expect(await closedWithin(c)).toBe(true);
    expect(c.packets.map((p) => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual([['disconnect', 0x82]]);
  });
});

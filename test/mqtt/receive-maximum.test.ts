// MQTT 5.0 Receive Maximum (§3.1.2.11.3, §4.9) over real sockets with mqtt-packet: the broker sends a client no more
// unacknowledged QoS 1 and 2 PUBLISHes than its CONNECT allows (a QoS 2 message counts until PUBCOMP, a refusing
// PUBREC frees its slot), the rest wait in order (QoS 0 ones behind them too), a resumed session's resends count, the
// waiting messages are bounded as the mailbox is (a slow consumer past it, whose persistent session loses none of
// them); and the broker's own Receive Maximum (--mqtt-receive-maximum, CONNACK): a client past it is disconnected with 0x93.
//
// "Nothing more was sent" is shown without waiting on the clock: a witness subscriber without a Receive Maximum has
// every message first (the fan-out queues them for both at once), then the client's PINGREQ, whose PINGRESP comes
// behind whatever the broker had queued for it [MQTT-3.3.4-10].
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { connect5, RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
let web: TestClient;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
  web = await TestClient.connect(broker.url);
});
afterAll(async () => {
  web.ws.close();
  await broker.close();
});

type Publish = { cmd: 'publish'; messageId?: number; qos: number; dup?: boolean; retain?: boolean; payload: Buffer; topic: string };

const open5 = (port: number, clientId: string, properties: Record<string, unknown> = {}, clean = true) => connect5(port, clientId, { properties, clean });

async function subscriber(port: number, clientId: string, filter: string, properties: Record<string, unknown> = {}, clean = true): Promise<RawMqtt> {
  const { c } = await open5(port, clientId, properties, clean);
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 2 }] } as Packet, 5);
  await c.next('suback');
  return c;
}

/** What `c` has been sent so far, PINGRESP included: everything the broker had queued for it when it answered the ping. */
async function sentSoFar(c: RawMqtt): Promise<string[]> {
  c.send({ cmd: 'pingreq' } as Packet, 5);
  await c.next('pingresp');
  return c.published;
}

/** The PUBLISHes `c` received, taken out of its packets. */
function takePublishes(c: RawMqtt): Publish[] {
  const got = c.packets.filter((p) => p.cmd === 'publish') as unknown as Publish[];
  c.packets.splice(0, c.packets.length, ...c.packets.filter((p) => p.cmd !== 'publish'));
  return got;
}

async function nextPublish(c: RawMqtt): Promise<Publish> {
  return (await c.next('publish')) as unknown as Publish;
}

/** Publishes `data` from the WebSocket client at `qos` (its answer: the engine has fanned it out). */
const pub = (topic: string, data: unknown, qos: 0 | 1 | 2) => web.request({ op: 'pub', topic, data, qos });

describe('Receive Maximum: what the broker sends a client', () => {
  it('Receive Maximum 1: three QoS 1 messages go one at a time, each after the PUBACK of the one before', async () => {
    const witness = await subscriber(broker.mqttPort, 'rm-w1', 'rm/one');
    const c = await subscriber(broker.mqttPort, 'rm-c1', 'rm/one', { receiveMaximum: 1 });
    for (const m of ['m1', 'm2', 'm3']) await pub('rm/one', m, 1);
    await until(() => witness.published.length === 3, 'the witness has all three');
    expect(await sentSoFar(c)).toEqual(['"m1"']);
    const first = takePublishes(c)[0]!;
    expect(first.qos).toBe(1);
    c.send({ cmd: 'puback', messageId: first.messageId } as Packet, 5);
    const second = await nextPublish(c);
    expect(second.payload.toString()).toBe('"m2"');
    expect(await sentSoFar(c)).toEqual([]);
    c.send({ cmd: 'puback', messageId: second.messageId } as Packet, 5);
    expect((await nextPublish(c)).payload.toString()).toBe('"m3"');
    c.socket.destroy();
    witness.socket.destroy();
  });

  it('a QoS 2 message counts until its PUBCOMP (not its PUBREC); a refusing PUBREC frees the slot', async () => {
    const witness = await subscriber(broker.mqttPort, 'rm-w2', 'rm/two');
    const c = await subscriber(broker.mqttPort, 'rm-c2', 'rm/two', { receiveMaximum: 1 });
    for (const m of ['a', 'b', 'c']) await pub('rm/two', m, 2);
    await until(() => witness.published.length === 3, 'the witness has all three');
    const a = await nextPublish(c);
    expect(a).toMatchObject({ qos: 2 });
    c.send({ cmd: 'pubrec', messageId: a.messageId } as Packet, 5);
    await c.next('pubrel');
    // PUBREC answered, PUBCOMP not sent yet: still in flight.
    expect(await sentSoFar(c)).toEqual([]);
    c.send({ cmd: 'pubcomp', messageId: a.messageId } as Packet, 5);
    const b = await nextPublish(c);
    expect(b.payload.toString()).toBe('"b"');
    // The client refuses b (PUBREC 0x80 and up): its exchange ends there [MQTT-4.3.3-4], and c goes.
    c.send({ cmd: 'pubrec', messageId: b.messageId, reasonCode: 0x80 } as Packet, 5);
    expect((await nextPublish(c)).payload.toString()).toBe('"c"');
    c.socket.destroy();
    witness.socket.destroy();
  });

  it('QoS 0 messages go at once while nothing waits, and wait behind a waiting QoS 1 one: every message in the order published', async () => {
    const witness = await subscriber(broker.mqttPort, 'rm-w3', 'rm/mixed');
    const c = await subscriber(broker.mqttPort, 'rm-c3', 'rm/mixed', { receiveMaximum: 1 });
    await pub('rm/mixed', 'q1-a', 1);
    await pub('rm/mixed', 'q0-b', 0); // nothing waits: sent though the quota is used up
    await pub('rm/mixed', 'q1-c', 1); // waits
    await pub('rm/mixed', 'q0-d', 0); // waits behind q1-c, so it does not overtake it
    await pub('rm/mixed', 'q1-e', 1);
    await until(() => witness.published.length === 5, 'the witness has all five');
    expect(await sentSoFar(c)).toEqual(['"q1-a"', '"q0-b"']);
    const got: Publish[] = [];
    await until(() => {
      for (const p of takePublishes(c)) {
        got.push(p);
        if (p.qos > 0) c.send({ cmd: 'puback', messageId: p.messageId } as Packet, 5);
      }
      return got.length === 5;
    }, 'all five, acknowledging each QoS 1 one');
    expect(got.map((p) => `${p.payload.toString()}@${p.qos}`)).toEqual(['"q1-a"@1', '"q0-b"@0', '"q1-c"@1', '"q0-d"@0', '"q1-e"@1']);
    c.socket.destroy();
    witness.socket.destroy();
  });

  it('retained messages of a new subscription wait for the Receive Maximum too', async () => {
    const p = (await open5(broker.mqttPort, 'rm-ret-pub')).c;
    for (const [i, topic] of ['rm/ret/1', 'rm/ret/2', 'rm/ret/3'].entries()) {
      p.send({ cmd: 'publish', topic, payload: Buffer.from(`r${i + 1}`), qos: 1, messageId: i + 1, retain: true, dup: false } as Packet, 5);
      await p.next('puback');
    }
    const c = await subscriber(broker.mqttPort, 'rm-ret', 'rm/ret/+', { receiveMaximum: 2 });
    await until(() => c.published.length >= 2, 'two retained messages');
    expect(await sentSoFar(c)).toHaveLength(2);
    const [first] = takePublishes(c);
    c.send({ cmd: 'puback', messageId: first!.messageId } as Packet, 5);
    expect((await nextPublish(c)).retain).toBe(true);
    c.socket.destroy();
    p.socket.destroy();
  });

  it('a resumed session resends its unacknowledged messages first, and they count against the new Receive Maximum', async () => {
    const first = await subscriber(broker.mqttPort, 'rm-resume', 'rm/resume', { sessionExpiryInterval: 300 });
    for (const m of ['u1', 'u2', 'u3']) await pub('rm/resume', m, 1);
    await until(() => first.published.length === 3, 'three in flight, never acknowledged');
    first.socket.destroy();
    await first.closed;
    const { c, connack } = await open5(broker.mqttPort, 'rm-resume', { sessionExpiryInterval: 300, receiveMaximum: 1 }, false);
    expect(connack).toMatchObject({ sessionPresent: true });
    await pub('rm/resume', 'new', 1); // the session's filter resumes after the resends: it comes after them
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await nextPublish(c);
      got.push(`${p.payload.toString()}${p.dup ? ' (dup)' : ''}`);
      // One at a time: nothing else was sent before this one's PUBACK.
      expect(await sentSoFar(c)).toEqual([]);
      c.send({ cmd: 'puback', messageId: p.messageId } as Packet, 5);
    }
    expect(got).toEqual(['"u1" (dup)', '"u2" (dup)', '"u3" (dup)', '"new"']);
    c.socket.destroy();
  });
});

describe('Receive Maximum: the waiting messages are bounded', () => {
  let small: TestBroker;
  let smallWeb: TestClient;
  beforeAll(async () => {
    // 8 messages in flight and waiting, 2 KB waiting at most.
    small = await startTestBroker({ mqttPort: 0, mailboxSize: 8, mailboxBytes: 2048 });
    smallWeb = await TestClient.connect(small.url);
  });
  afterAll(async () => {
    smallWeb.ws.close();
    await small.close();
  });

  it('past the in-flight bound (--mailbox-size), messages waiting included, a client that does not acknowledge is a slow consumer (0x97)', async () => {
    const c = await subscriber(small.mqttPort, 'rm-count', 'rm/count', { receiveMaximum: 1 });
    for (let i = 1; i <= 8; i++) await smallWeb.request({ op: 'pub', topic: 'rm/count', data: i, qos: 1 });
    // One in flight and seven waiting: the bound, not past it.
    expect(await sentSoFar(c)).toEqual(['1']);
    await smallWeb.request({ op: 'pub', topic: 'rm/count', data: 9, qos: 1 });
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x97 });
    await c.closed;
  });

  it('past the bytes waiting (--mailbox-bytes), a client that does not acknowledge is a slow consumer (0x97)', async () => {
    const c = await subscriber(small.mqttPort, 'rm-bytes', 'rm/bytes', { receiveMaximum: 1 });
    const big = 'x'.repeat(900);
    await smallWeb.request({ op: 'pub', topic: 'rm/bytes', data: `1${big}`, qos: 1 }); // sent
    await smallWeb.request({ op: 'pub', topic: 'rm/bytes', data: `2${big}`, qos: 1 }); // waits (~920 bytes)
    expect(await sentSoFar(c)).toHaveLength(1);
    await smallWeb.request({ op: 'pub', topic: 'rm/bytes', data: `3${big}`, qos: 1 }); // would wait: past 2 KB
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x97 });
    await c.closed;
  });

  it('a persistent session cut with messages waiting gets them on resume, after its resends', async () => {
    // Receive Maximum 7 of the 8 the bound holds: 7 in flight (1-6 on a, 7 on b), 8 (on a) waiting, 9 (on b) past the
    // bound. Few enough to be replayed by one resume (half the mailbox: docs/mqtt.md, Sessions).
    const topics = ['a', 'a', 'a', 'a', 'a', 'a', 'b', 'a', 'b'];
    const c = await subscriber(small.mqttPort, 'rm-cut', 'rm/cut/+', { receiveMaximum: 7, sessionExpiryInterval: 300 });
    for (const [i, t] of topics.entries()) await smallWeb.request({ op: 'pub', topic: `rm/cut/${t}`, data: i + 1, qos: 1 });
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x97 });
    await c.closed;
    expect(c.published).toEqual(['1', '2', '3', '4', '5', '6', '7']);
    const again = (await open5(small.mqttPort, 'rm-cut', { sessionExpiryInterval: 300 }, false)).c;
    const got: Publish[] = [];
    await until(() => {
      for (const p of takePublishes(again)) {
        got.push(p);
        again.send({ cmd: 'puback', messageId: p.messageId } as Packet, 5);
      }
      return got.length >= 9;
    }, 'the nine messages').catch((err: Error) => {
      throw new Error(`${err.message}: got ${JSON.stringify(got.map((p) => `${p.topic} ${p.payload.toString()}`))}`);
    });
    // The seven in flight again (DUP), then the one that waited and the one that found no room, from the history.
    expect(got.slice(0, 7).map((p) => `${p.payload.toString()}${p.dup ? ' (dup)' : ''}`)).toEqual(['1 (dup)', '2 (dup)', '3 (dup)', '4 (dup)', '5 (dup)', '6 (dup)', '7 (dup)']);
    expect(got.slice(7).map((p) => `${p.topic} ${p.payload.toString()}`).sort()).toEqual(['rm/cut/a 8', 'rm/cut/b 9']);
    again.socket.destroy();
  });
});

describe("the broker's own Receive Maximum", () => {
  // --mqtt-receive-maximum 10 on a broker of its own; the default (65535, MQTT's own) is the shared broker's.
  let strict: TestBroker;
  beforeAll(async () => {
    strict = await startTestBroker({ mqttPort: 0, mqttReceiveMaximum: 10 });
  });
  afterAll(async () => {
    await strict.close();
  });
  const publishes = (topic: string, qos: 1 | 2, from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({ cmd: 'publish', topic, payload: Buffer.from('x'), qos, messageId: from + i, retain: false, dup: false }) as Packet);

  it('by default CONNACK says none (65535): a client with 2000 QoS 2 PUBLISHes unreleased is not disconnected', async () => {
    const { c, connack } = await open5(broker.mqttPort, 'rm-default');
    expect((connack as { properties?: { receiveMaximum?: number } }).properties?.receiveMaximum).toBeUndefined();
    c.sendAll(publishes('rm/in0', 2, 1, 2000), 5);
    await until(() => c.packets.filter((p) => p.cmd === 'pubrec').length === 2000, '2000 PUBRECs');
    c.send({ cmd: 'pingreq' } as Packet, 5);
    await c.next('pingresp');
    expect(c.packets.some((p) => p.cmd === 'disconnect')).toBe(false);
    c.socket.destroy();
  });

  it('CONNACK says --mqtt-receive-maximum; a client with that many QoS 2 PUBLISHes unreleased that sends one more is disconnected with 0x93', async () => {
    const { c, connack } = await open5(strict.mqttPort, 'rm-flood');
    expect((connack as { properties?: { receiveMaximum?: number } }).properties?.receiveMaximum).toBe(10);
    c.sendAll(publishes('rm/in', 2, 1, 10), 5);
    await until(() => c.packets.filter((p) => p.cmd === 'pubrec').length === 10, '10 PUBRECs');
    // Sent again before its PUBREL, one of them is the same exchange: not one more.
    c.send({ cmd: 'publish', topic: 'rm/in', payload: Buffer.from('x'), qos: 2, messageId: 1, retain: false, dup: true } as Packet, 5);
    await until(() => c.packets.filter((p) => p.cmd === 'pubrec').length === 11, 'the resend answered');
    c.send({ cmd: 'publish', topic: 'rm/in', payload: Buffer.from('x'), qos: 2, messageId: 11, retain: false, dup: false } as Packet, 5);
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x93 });
    await c.closed;
  });

  it('a client that releases what it sent stays under it', async () => {
    const { c } = await open5(strict.mqttPort, 'rm-steady');
    c.sendAll(publishes('rm/in2', 2, 1, 10), 5);
    await until(() => c.packets.filter((p) => p.cmd === 'pubrec').length === 10, '10 PUBRECs');
    c.sendAll(Array.from({ length: 10 }, (_, i) => ({ cmd: 'pubrel', messageId: i + 1 }) as Packet), 5);
    await until(() => c.packets.filter((p) => p.cmd === 'pubcomp').length === 10, '10 PUBCOMPs');
    c.sendAll(publishes('rm/in2', 2, 11, 10), 5);
    await until(() => c.packets.filter((p) => p.cmd === 'pubrec').length === 20, '10 more PUBRECs');
    expect(c.packets.some((p) => p.cmd === 'disconnect')).toBe(false);
    c.socket.destroy();
  });

  it('QoS 1 PUBLISHes free their place once answered (PUBACK): a client that waits for its PUBACKs is never past it', async () => {
    const { c } = await open5(strict.mqttPort, 'rm-steady1');
    c.sendAll(publishes('rm/in3', 1, 1, 10), 5);
    await until(() => c.packets.filter((p) => p.cmd === 'puback').length === 10, '10 PUBACKs');
    c.sendAll(publishes('rm/in3', 1, 11, 10), 5);
    await until(() => c.packets.filter((p) => p.cmd === 'puback').length === 20, '10 more PUBACKs');
    expect(c.packets.some((p) => p.cmd === 'disconnect')).toBe(false);
    c.socket.destroy();
  });

  it('a Receive Maximum of 0 in CONNECT is a protocol error: CONNACK 0x82', async () => {
    const { c, connack } = await open5(broker.mqttPort, 'rm-zero', { receiveMaximum: 0 });
    expect(connack).toMatchObject({ reasonCode: 0x82 });
    await c.closed;
  });
});

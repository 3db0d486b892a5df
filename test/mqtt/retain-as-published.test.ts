// MQTT 5.0 Retain As Published (§3.8.3.1) over real sockets with mqtt-packet: a message forwarded live through a
// subscription with the option keeps the retain flag it was published with; without it, retain 0 [MQTT-3.3.1-12]
// [MQTT-3.3.1-13]; retained messages sent for a new subscription carry 1 either way. The flag travels with the message
// (in memory, and on a cluster in its bus and stream entry), so a resumed session's replay and a node's subscribers
// of another node's publish keep it too; the option is session state. Live messages used to carry retain 0 always.
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
  rap?: boolean;
  nl?: boolean;
  rh?: 0 | 1 | 2;
}

async function connect(port: number, clientId: string, o: { expiry?: number; clean?: boolean; version?: 4 | 5 } = {}): Promise<{ c: RawMqtt; connack: Packet }> {
  const version = o.version ?? 5;
  const c = await RawMqtt.open(port, version);
  const properties = version === 5 && o.expiry !== undefined ? { properties: { sessionExpiryInterval: o.expiry } } : {};
  c.send({ cmd: 'connect', clientId, keepalive: 0, clean: o.clean ?? true, protocolId: 'MQTT', protocolVersion: version, ...properties } as Packet, version);
  return { c, connack: await c.next('connack') };
}

async function subscribe(c: RawMqtt, subs: Sub[], messageId = 1, version: 4 | 5 = 5): Promise<void> {
  c.send({ cmd: 'subscribe', messageId, subscriptions: subs.map((s) => ({ qos: 2, ...s })) } as Packet, version);
  const suback = (await c.next('suback')) as { granted: number[] };
  expect(suback.granted.every((g) => g < 0x80)).toBe(true);
}

/** Publishes `text` on `topic` from `c` at `qos` with the retain flag `retain`, waiting for its acknowledgement. */
async function publish(c: RawMqtt, topic: string, text: string, qos: 0 | 1 | 2, retain: boolean, messageId = 1, version: 4 | 5 = 5): Promise<void> {
  c.send({ cmd: 'publish', topic, payload: Buffer.from(text), qos, retain, dup: false, ...(qos > 0 && { messageId }) } as Packet, version);
  if (qos === 1) await c.next('puback');
  if (qos === 2) {
    await c.next('pubrec');
    c.send({ cmd: 'pubrel', messageId } as Packet, version);
    await c.next('pubcomp');
  }
}

/** The PUBLISHes `c` got (acknowledged as they come), once it has `n`: payload and retain flag of each. */
async function received(c: RawMqtt, n: number, version: 4 | 5 = 5): Promise<string[]> {
  const got: IPublishPacket[] = [];
  await until(() => {
    for (let i = c.packets.findIndex((p) => p.cmd === 'publish'); i >= 0; i = c.packets.findIndex((p) => p.cmd === 'publish')) {
      const p = c.packets.splice(i, 1)[0] as IPublishPacket;
      got.push(p);
      if (p.qos === 1) c.send({ cmd: 'puback', messageId: p.messageId } as Packet, version);
      if (p.qos === 2) c.send({ cmd: 'pubrec', messageId: p.messageId } as Packet, version);
    }
    return got.length >= n;
  }, `${n} messages (got ${got.length})`);
  return got.map((p) => `${p.payload.toString()} r${p.retain ? 1 : 0}`);
}

/** A PINGREQ answered: what the broker sent `c` before it has arrived (nothing more is on its way). */
async function barrier(c: RawMqtt, version: 4 | 5 = 5): Promise<void> {
  c.send({ cmd: 'pingreq' } as Packet, version);
  await c.next('pingresp');
}

describe('Retain As Published on one node', () => {
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startTestBroker({ mqttPort: 0 });
  });
  afterAll(() => broker.close());

  it('with the option a live message keeps its retain flag, at every QoS; without it, 0', async () => {
    const rap = (await connect(broker.mqttPort, 'rap1-a')).c;
    const plain = (await connect(broker.mqttPort, 'rap1-b')).c;
    await subscribe(rap, [{ topic: 'rap/1/#', rap: true }]);
    await subscribe(plain, [{ topic: 'rap/1/#' }]);
    const pub = (await connect(broker.mqttPort, 'rap1-pub')).c;
    await publish(pub, 'rap/1/x', 'q0', 0, false);
    await publish(pub, 'rap/1/x', 'q0r', 0, true);
    await publish(pub, 'rap/1/y', 'q1', 1, false, 1);
    await publish(pub, 'rap/1/y', 'q1r', 1, true, 2);
    await publish(pub, 'rap/1/z', 'q2', 2, false, 3);
    await publish(pub, 'rap/1/z', 'q2r', 2, true, 4);
    expect(await received(rap, 6)).toEqual(['q0 r0', 'q0r r1', 'q1 r0', 'q1r r1', 'q2 r0', 'q2r r1']);
    expect(await received(plain, 6)).toEqual(['q0 r0', 'q0r r0', 'q1 r0', 'q1r r0', 'q2 r0', 'q2r r0']);
    // A new subscription's retained messages carry 1 either way (as before).
    await subscribe(plain, [{ topic: 'rap/1/+' }], 2);
    expect((await received(plain, 3)).sort()).toEqual(['q0r r1', 'q1r r1', 'q2r r1']);
    for (const c of [rap, plain, pub]) c.socket.destroy();
  });

  it('a 3.1.1 publisher\'s retain flag is kept too; a 3.1.1 subscriber (no such option) gets 0', async () => {
    const rap = (await connect(broker.mqttPort, 'rap2-a')).c;
    await subscribe(rap, [{ topic: 'rap/2', rap: true, qos: 1 }]);
    const old = (await connect(broker.mqttPort, 'rap2-old', { version: 4 })).c;
    await subscribe(old, [{ topic: 'rap/2', qos: 1 }], 1, 4);
    const pub = (await connect(broker.mqttPort, 'rap2-pub', { version: 4 })).c;
    await publish(pub, 'rap/2', 'v4r', 1, true, 1, 4);
    expect(await received(rap, 1)).toEqual(['v4r r1']);
    expect(await received(old, 1, 4)).toEqual(['v4r r0']);
    for (const c of [rap, old, pub]) c.socket.destroy();
  });

  it('two filters match, one with the option: the one copy keeps the flag; a resubscribe without it drops it', async () => {
    const c = (await connect(broker.mqttPort, 'rap3')).c;
    await subscribe(c, [{ topic: 'rap/3/#' }, { topic: 'rap/3/+', rap: true, rh: 2 }]);
    const pub = (await connect(broker.mqttPort, 'rap3-pub')).c;
    await publish(pub, 'rap/3/a', 'both', 1, true);
    expect(await received(c, 1)).toEqual(['both r1']);
    await subscribe(c, [{ topic: 'rap/3/+', rh: 2 }], 2); // the same filter again, without the option
    await publish(pub, 'rap/3/a', 'after', 1, true);
    expect(await received(c, 1)).toEqual(['after r0']);
    await barrier(c);
    expect(c.published).toEqual([]);
    for (const x of [c, pub]) x.socket.destroy();
  });

  it('a WebSocket publisher has no retain flag to keep, whatever its frame says', async () => {
    const c = (await connect(broker.mqttPort, 'rap4')).c;
    await subscribe(c, [{ topic: 'rap/4', rap: true }]);
    const web = await TestClient.connect(broker.url);
    await web.request({ op: 'pub', topic: 'rap/4', data: 'ws', retain: true });
    expect(await received(c, 1)).toEqual(['"ws" r0']);
    c.socket.destroy();
    web.close();
  });

  it('the option is kept with the session: a resume replays what came meanwhile with its flag, and live ones keep it', async () => {
    const first = (await connect(broker.mqttPort, 'rap5', { expiry: 300 })).c;
    await subscribe(first, [{ topic: 'rap/5', rap: true, qos: 1 }]);
    first.send({ cmd: 'disconnect', reasonCode: 0 } as Packet, 5);
    await first.closed;
    const pub = (await connect(broker.mqttPort, 'rap5-pub')).c;
    await publish(pub, 'rap/5', 'away', 1, true, 1);
    await publish(pub, 'rap/5', 'away-plain', 1, false, 2);
    const again = await connect(broker.mqttPort, 'rap5', { expiry: 300, clean: false });
    expect(again.connack).toMatchObject({ sessionPresent: true });
    expect(await received(again.c, 2)).toEqual(['away r1', 'away-plain r0']);
    await publish(pub, 'rap/5', 'live', 1, true, 3);
    expect(await received(again.c, 1)).toEqual(['live r1']);
    for (const x of [again.c, pub]) x.socket.destroy();
  });

  it('an unacknowledged message is sent again (DUP) on resume with the flag it went out with', async () => {
    const first = (await connect(broker.mqttPort, 'rap6', { expiry: 300 })).c;
    await subscribe(first, [{ topic: 'rap/6', rap: true, qos: 1 }]);
    const pub = (await connect(broker.mqttPort, 'rap6-pub')).c;
    await publish(pub, 'rap/6', 'unacked', 1, true);
    await until(() => first.published.includes('unacked'), 'the message');
    first.socket.destroy(); // never acknowledged
    await first.closed;
    const again = await connect(broker.mqttPort, 'rap6', { expiry: 300, clean: false });
    const resent = (await again.c.next('publish')) as IPublishPacket;
    expect([resent.payload.toString(), resent.dup, resent.retain]).toEqual(['unacked', true, true]);
    for (const x of [again.c, pub]) x.socket.destroy();
  });
});

const run = requireRedis('Retain As Published on a cluster');

describe.skipIf(!run)('Retain As Published across two nodes of one Redis', () => {
  let a: TestBroker;
  let b: TestBroker;
  const nodes = mqttNodes();
  beforeAll(() => void ({ a, b } = nodes));

  it('a publish on A reaches a subscriber on B with its flag; a session left on B resumes on A with the option and replays the flag', async () => {
    const onB = (await connect(b.mqttPort, 'rapc1', { expiry: 300 })).c;
    await subscribe(onB, [{ topic: 'rapc/1', rap: true, qos: 1 }]);
    const pub = (await connect(a.mqttPort, 'rapc1-pub')).c;
    await publish(pub, 'rapc/1', 'q0r', 0, true);
    await publish(pub, 'rapc/1', 'q1', 1, false, 1);
    await publish(pub, 'rapc/1', 'q2r', 2, true, 2);
    expect(await received(onB, 3)).toEqual(['q0r r1', 'q1 r0', 'q2r r1']);
    onB.send({ cmd: 'disconnect', reasonCode: 0 } as Packet, 5);
    await onB.closed;
    await publish(pub, 'rapc/1', 'away', 1, true, 3);
    const onA = await connect(a.mqttPort, 'rapc1', { expiry: 300, clean: false });
    expect(onA.connack).toMatchObject({ sessionPresent: true });
    expect(await received(onA.c, 1)).toEqual(['away r1']);
    await publish(pub, 'rapc/1', 'live', 1, true, 4);
    expect(await received(onA.c, 1)).toEqual(['live r1']);
    for (const x of [onA.c, pub]) x.socket.destroy();
  });
});

// MQTT delivers a message at the lower of its publisher's QoS and the subscription's (MQTT 3.1.1 §3.8.4, 5.0
// §3.8.4): a QoS 0 publish is never upgraded to QoS 1 for a QoS 1 subscriber. Messages from WebSocket, TCP and HTTP
// publishers (acknowledged, resumable) count as QoS 2: delivered at the subscription's QoS. On one process and
// across two nodes of a Redis cluster (the publisher's QoS travels with the message on the bus and in the stream),
// and in a persistent session's resume from the history.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { Devices } from '../helpers/mqtt-devices.js';
import { requireRedis, startNode, TestRedis, until } from '../cluster/redis.js';

const devices = new Devices();
const device = (node: TestBroker, clientId: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> => devices.connect(node, clientId, options);

/** Every message `c` receives from now on, as `payload@qos`. */
function received(c: MqttClient): string[] {
  const got: string[] = [];
  c.on('message', (_t, p, packet) => got.push(`${p.toString()}@${packet.qos}`));
  return got;
}

/** Publishes at QoS 0, 1, 2 from an MQTT client on `from`, and once from a WebSocket client; checks what `to`'s subscribers get. */
async function deliveredAt(from: TestBroker, to: TestBroker, tag: string): Promise<void> {
  const topic = `q/${tag}`;
  const sub1 = await device(to, `${tag}-s1`);
  await sub1.subscribeAsync(topic, { qos: 1 });
  const sub2 = await device(to, `${tag}-s2`);
  await sub2.subscribeAsync(topic, { qos: 2 });
  const got1 = received(sub1);
  const got2 = received(sub2);
  const pub = await device(from, `${tag}-p`);
  await pub.publishAsync(topic, 'zero', { qos: 0 });
  await pub.publishAsync(topic, 'one', { qos: 1 });
  await pub.publishAsync(topic, 'two', { qos: 2 });
  const web = await TestClient.connect(from.url);
  expect(await web.request({ op: 'pub', topic, data: 'web' })).toMatchObject({ op: 'ack' });
  web.close();
  await until(() => got1.length === 4 && got2.length === 4, `four messages at both subscribers (have ${got1.length}, ${got2.length})`);
  expect(got1).toEqual(['zero@0', 'one@1', 'two@1', '"web"@1']);
  expect(got2).toEqual(['zero@0', 'one@1', 'two@2', '"web"@2']);
}

describe('MQTT delivery QoS: the lower of the publisher\'s and the subscription\'s', () => {
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startTestBroker({ mqttPort: 0 });
  });
  afterAll(async () => {
    await devices.closeAll();
    await broker?.close();
  });

  it('on one process', async () => {
    await deliveredAt(broker, broker, 'one');
  });

  it('in a persistent session resumed from the history: a QoS 0 message missed while away comes at QoS 0', async () => {
    const opts = { clean: false };
    const away = await device(broker, 'resumer', opts);
    await away.subscribeAsync('q/resume', { qos: 1 });
    await away.endAsync();
    const pub = await device(broker, 'resume-pub');
    await pub.publishAsync('q/resume', 'while away 0', { qos: 0 });
    await pub.publishAsync('q/resume', 'while away 1', { qos: 1 });
    // Listening before the CONNACK: the missed messages follow it at once.
    const back = mqtt.connect(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'resumer', reconnectPeriod: 0, ...opts });
    devices.add(back);
    const got = received(back);
    await until(() => got.length === 2, `the two messages missed (have ${got.length})`);
    expect(got).toEqual(['while away 0@0', 'while away 1@1']);
  });
});

const run = requireRedis('mqtt qos cluster');
describe.skipIf(!run)('MQTT delivery QoS across two nodes', () => {
  let redis: TestRedis;
  let a: TestBroker;
  let b: TestBroker;
  beforeAll(async () => {
    redis = await TestRedis.start();
    a = await startNode(redis, { mqttPort: 0 });
    b = await startNode(redis, { mqttPort: 0 });
  });
  afterAll(async () => {
    await devices.closeAll();
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('published on A, delivered on B', async () => {
    await deliveredAt(a, b, 'two');
  });
});

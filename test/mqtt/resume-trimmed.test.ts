// A persistent MQTT session that was away while more than --history messages were published resumes
// `history_trimmed` (the older ones are lost: docs/mqtt.md) and is delivered what the broker still holds, once each,
// even when two of its filters match the topic (the once-per-connection check), then live messages.
import { afterEach, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { Devices } from '../helpers/mqtt-devices.js';
import { requireRedis, startNode, TestRedis, until } from '../cluster/redis.js';

const devices = new Devices();
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  await devices.closeAll();
  for (const f of cleanup.splice(0).reverse()) await f();
});

function received(c: MqttClient): string[] {
  const got: string[] = [];
  c.on('message', (t, p) => got.push(`${t} ${p.toString()}`));
  return got;
}

async function publish(node: TestBroker, topic: string, from: number, to: number): Promise<void> {
  const web = await TestClient.connect(node.url);
  for (let i = from; i <= to; i++) expect(await web.request({ op: 'pub', topic, data: i })).toMatchObject({ op: 'ack' });
  web.close();
}

function scenario(setup: () => Promise<{ first: TestBroker; second: TestBroker }>): void {
  it('a persistent session resumed past the history gets the held messages once each, then live ones', async () => {
    const { first, second } = await setup();
    const opts = { clean: false };
    const away = await devices.connect(first, 'trim-resumer', opts);
    await away.subscribeAsync('m/t', { qos: 1 });
    await away.subscribeAsync('m/+', { qos: 1 }); // a second filter matching the topic: replayed for both
    const before = received(away);
    await publish(first, 'm/t', 1, 1);
    await until(() => before.length === 1, 'the first message');
    await away.endAsync();
    await publish(first, 'm/t', 2, 10); // history keeps 3: 8, 9, 10
    const back = mqtt.connect(`mqtt://127.0.0.1:${second.mqttPort}`, { clientId: 'trim-resumer', reconnectPeriod: 0, ...opts });
    devices.add(back);
    const got = received(back);
    await until(() => got.length >= 3, `the held messages (have ${got.length})`);
    await publish(first, 'm/t', 11, 11);
    await until(() => got.includes('m/t 11'), 'the live one');
    expect(got).toEqual(['m/t 8', 'm/t 9', 'm/t 10', 'm/t 11']);
  });
}

describe('MQTT persistent session resumed history_trimmed (memory engine)', () => {
  scenario(async () => {
    const broker = await startTestBroker({ mqttPort: 0, historySize: 3 });
    cleanup.push(() => broker.close());
    return { first: broker, second: broker };
  });
});

const withRedis = requireRedis('mqtt history_trimmed resume on a cluster');
describe.skipIf(!withRedis)('MQTT persistent session resumed history_trimmed (Redis engine, two nodes)', () => {
  scenario(async () => {
    const redis = await TestRedis.start();
    cleanup.push(() => redis.stop());
    const a = await startNode(redis, { mqttPort: 0, historySize: 3 });
    cleanup.push(() => a.close());
    const b = await startNode(redis, { mqttPort: 0, historySize: 3 });
    cleanup.push(() => b.close());
    return { first: a, second: b };
  });
});

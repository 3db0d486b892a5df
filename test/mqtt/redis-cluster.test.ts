// MQTT and SSE on two brokers of a real Redis Cluster (3 masters): the shared retained messages and sessions (all
// under `{g}`, one shard) and the node calls (classic PUBLISH, which a Redis Cluster carries to every node's
// subscribers) work there as on one Redis: retained on A given on B, a session left on A resumed on B, a takeover
// from B of a connection on A, an SSE POST on B for A's stream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { requireRedis, startNode, TestRedisCluster, until } from '../cluster/redis.js';
import { TestClient } from '../helpers/client.js';
import { SseClient } from '../helpers/sse-client.js';
import type { TestBroker } from '../helpers/broker.js';
import { Devices, inbox } from '../helpers/mqtt-devices.js';

const run = requireRedis('mqtt on a redis cluster', true);

describe.skipIf(!run)('MQTT and SSE on a Redis Cluster', () => {
  let rc: TestRedisCluster;
  let a: TestBroker;
  let b: TestBroker;
  const devices = new Devices();
  const device = (node: TestBroker, clientId: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> => devices.connect(node, clientId, options);

  beforeAll(async () => {
    rc = await TestRedisCluster.start();
    a = await startNode(rc, { mqttPort: 0, historySize: 50 });
    b = await startNode(rc, { mqttPort: 0, historySize: 50 });
  });
  afterAll(async () => {
    await devices.closeAll();
    await a?.close();
    await b?.close();
    await rc?.stop();
  });

  it('retained, a session resumed, a takeover and an SSE POST, across the two brokers', async () => {
    const sensor = await device(a, 'rc-sensor');
    await sensor.publishAsync('rc/pump', 'running', { qos: 1, retain: true });
    const reader = await device(b, 'rc-reader');
    const read = inbox(reader);
    await reader.subscribeAsync('rc/#', { qos: 1 });
    await until(() => read.includes('rc/pump running (r)'), 'the retained message on B');

    const options = { clean: false, clientId: 'rc-roamer' } as const;
    const first = await device(a, options.clientId, options);
    await first.subscribeAsync('rc/away/#', { qos: 1 });
    await first.endAsync();
    const web = await TestClient.connect(`ws://127.0.0.1:${a.port}/ws`);
    await web.request({ op: 'pub', topic: 'rc/away/x', data: 1 });
    const again = await device(b, options.clientId, options);
    const got = inbox(again);
    await until(() => got.includes('rc/away/x 1'), 'what was published while away, on B');

    // Taken over from A while live on B.
    const closed = new Promise<void>((resolve) => again.once('close', () => resolve()));
    const third = mqtt.connect(`mqtt://127.0.0.1:${a.mqttPort}`, { ...options, reconnectPeriod: 0 });
    devices.add(third);
    expect((await new Promise<{ sessionPresent: boolean }>((resolve) => third.once('connect', resolve))).sessionPresent).toBe(true);
    await closed;

    const sse = await SseClient.open(a.httpUrl, '/sse?topics=rc/x');
    const viaB = await fetch(`${b.httpUrl}${sse.post}`, { method: 'POST', body: '{"op":"ping","id":"rc"}' });
    expect(viaB.status).toBe(202);
    expect(await sse.frame((f) => f.id === 'rc')).toMatchObject({ op: 'pong' });
    sse.close();
    web.close();
  });
});

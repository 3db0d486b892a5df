// A persistent session's CONNECT whose claim Redis took and did not answer (Redis hung past --redis-timeout-ms) is
// refused (CONNACK server unavailable), and the claim runs when Redis wakes. The session must survive it: a claim
// for a resume leaves the session stored until its connection keeps a newer one, so the client's next CONNECT
// resumes it, at once (the refused claim's hold is released, not waited out). Before, the late claim removed it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { health, requireRedis, startNode, TestRedis, until } from '../cluster/redis.js';
import type { TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { payloadsOf, persistentConnect, RawMqtt } from '../helpers/raw-mqtt.js';

const run = requireRedis('mqtt claim lost');

describe.skipIf(!run)('MQTT: a session claim Redis did not answer', () => {
  let redis: TestRedis;
  let node: TestBroker;
  beforeAll(async () => {
    redis = await TestRedis.start();
    node = await startNode(redis, { mqttPort: 0, redisTimeoutMs: 1000, nodeTickMs: 100, nodeTtlMs: 5000 });
  });
  afterAll(async () => {
    redis?.resume();
    await node?.close();
    await redis?.stop();
  });

  it('is refused (CONNACK 3), and the session is still there for the next CONNECT: resumed at once, with what came while away', async () => {
    const first = await RawMqtt.open(node.mqttPort);
    first.send(persistentConnect('keeper'));
    expect(await first.next('connack')).toMatchObject({ returnCode: 0, sessionPresent: false });
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'kept/#', qos: 1 }] } as Packet);
    await first.next('suback');
    first.send({ cmd: 'disconnect' } as Packet);
    await first.closed;
    const web = await TestClient.connect(node.url);
    await until(async () => (await web.request({ op: 'who', topic: 'kept/#' })).clients.length === 0, 'the first connection gone');
    expect(await web.request({ op: 'pub', topic: 'kept/1', data: 'while away', qos: 1 })).toMatchObject({ op: 'ack' });

    // Redis hangs while the next CONNECT claims the session: the claim is written, unanswered, and times out.
    redis.pause();
    const refused = await RawMqtt.open(node.mqttPort);
    refused.send(persistentConnect('keeper'));
    let connack: Packet;
    try {
      connack = await refused.next('connack', 10_000);
    } finally {
      redis.resume(); // the claim runs now
    }
    expect(connack).toMatchObject({ returnCode: 3 });
    await refused.closed;
    await until(async () => (await health(node)) === 'running', 'the node running once Redis answers', 10_000);

    const back = await RawMqtt.open(node.mqttPort);
    const started = Date.now();
    back.send(persistentConnect('keeper'));
    expect(await back.next('connack', 10_000), `after ${Date.now() - started} ms`).toMatchObject({ returnCode: 0, sessionPresent: true });
    expect(Date.now() - started).toBeLessThan(4000); // not the refused claim's hold waited out (close timeout + 2 s)
    expect(payloadsOf([await back.next('publish')])).toEqual(['"while away"']);
    back.socket.destroy();
    web.close();
  }, 40_000);
});

// A 5.0 session's expiry interval counts from when its connection ends [MQTT-3.1.2-23]. A session resumed and held by
// a live connection longer than its interval is still there for the next connection when that connection's node dies
// (docs/mqtt.md: what was stored when it was resumed is delivered again, never lost). It expired under the live
// connection, dated from the keep before (found by a review helper).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { Packet } from 'mqtt-packet';
import { RedisProxy, requireRedis, startNode, TestRedis, until } from '../cluster/redis.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

const run = requireRedis('a held MQTT session past its expiry interval');
const EXPIRY_S = 2;
const connect5 = (clientId: string) => ({ cmd: 'connect', clientId, keepalive: 0, clean: false, protocolId: 'MQTT', protocolVersion: 5, properties: { sessionExpiryInterval: EXPIRY_S } }) as Packet;

describe.skipIf(!run)('a resumed 5.0 session held longer than its expiry interval', () => {
  let redis: TestRedis;
  let survivor: TestBroker;
  let dying: TestBroker;
  let proxy: RedisProxy;
  let inspect: Redis;
  let dyingId = '';
  beforeAll(async () => {
    redis = await TestRedis.start();
    inspect = new Redis(redis.port, '127.0.0.1');
    survivor = await startNode(redis, { mqttPort: 0, nodeHangMs: 60_000 });
    proxy = await RedisProxy.start(redis.port);
    const before = await inspect.smembers(KEYS.nodes);
    dying = await startNode(redis, { mqttPort: 0, redisUrl: proxy.url, nodeHangMs: 60_000 });
    dyingId = (await inspect.smembers(KEYS.nodes)).find((n) => !before.includes(n)) ?? '';
  });
  afterAll(async () => {
    await dying?.close();
    await survivor?.close();
    await proxy?.cut();
    inspect?.disconnect();
    await redis?.stop();
  }, 30_000);

  it('its node dies: the next connection resumes it (session present, what came meanwhile)', async () => {
    expect(dyingId).not.toBe('');
    const holder = () => inspect.hget('sb:{g}:mqtt:sessions:owners', 'exp5');
    // The session is kept once (on the survivor)…
    const first = await RawMqtt.open(survivor.mqttPort, 5);
    first.send(connect5('exp5'), 5);
    expect(await first.next('connack')).toMatchObject({ reasonCode: 0 });
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'exp/#', qos: 1 }] } as Packet, 5);
    await first.next('suback');
    first.send({ cmd: 'disconnect' } as Packet, 5);
    await first.closed;
    await until(async () => (await holder()) === null, 'the session kept');
    // When that keep dated its expiry (ms since 1970).
    const expiresAt = Number(await inspect.zscore('sb:{g}:mqtt:sessions:expires', 'exp5'));
    expect(expiresAt).toBeGreaterThan(0);
    // …and resumed on the node that will die; that connection lives past the expiry the keep dated. A wait on the
    // clock, since the clock is what this is about: the interval is the client's, in whole seconds.
    const onDying = await RawMqtt.open(dying.mqttPort, 5);
    onDying.send(connect5('exp5'), 5);
    expect(await onDying.next('connack')).toMatchObject({ reasonCode: 0, sessionPresent: true });
    await until(() => Date.now() > expiresAt + 100, 'the interval over under the live connection', EXPIRY_S * 1000 + 5000);
    // The node dies (cut off from Redis for good), and its client's connection with it.
    await proxy.cut();
    onDying.socket.destroy();
    const web = await TestClient.connect(survivor.url);
    await web.request({ op: 'pub', topic: 'exp/1', data: 'while away', qos: 1 });
    await until(async () => (await inspect.sismember(KEYS.nodes, dyingId)) === 0, 'the dead node reaped', 15_000);
    const again = await RawMqtt.open(survivor.mqttPort, 5);
    again.send(connect5('exp5'), 5);
    expect(await again.next('connack', 10_000)).toMatchObject({ reasonCode: 0, sessionPresent: true });
    await until(() => again.published.includes('"while away"'), 'the message published while away', 5000);
    again.socket.destroy();
    web.close();
  }, 40_000);
});

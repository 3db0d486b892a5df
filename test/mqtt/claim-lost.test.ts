// A persistent session's CONNECT whose claim Redis took and did not answer (Redis hung past --redis-timeout-ms) is
// refused (CONNACK server unavailable), and the claim runs when Redis wakes. The session must survive it: a claim
// for a resume leaves the session stored until its connection keeps a newer one, so the client's next CONNECT
// resumes it, at once (the refused claim's hold is released, not waited out). Before, the late claim removed it.
// Only a connection that keeps a session in turn leaves it stored: a 5.0 resume with session expiry 0 ends it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { Redis } from 'ioredis';
import { health, metric, RedisProxy, requireRedis, startNode, TestRedis, until } from '../cluster/redis.js';
import type { TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { payloadsOf, persistentConnect, RawMqtt } from '../helpers/raw-mqtt.js';

const run = requireRedis('mqtt claim lost');

describe.skipIf(!run)('MQTT: a session claim Redis did not answer', () => {
  let redis: TestRedis;
  let node: TestBroker;
  let inspect: Redis;
  beforeAll(async () => {
    redis = await TestRedis.start();
    inspect = new Redis(redis.port, '127.0.0.1');
    node = await startNode(redis, { mqttPort: 0, redisTimeoutMs: 1000, nodeTickMs: 100, nodeTtlMs: 5000 });
  });
  afterAll(async () => {
    redis?.resume();
    await node?.close();
    inspect?.disconnect();
    await redis?.stop();
  });

  /** CONNECT on a Redis that hangs: the claim is written, unanswered, times out (CONNACK refused); it runs when Redis wakes. */
  const refusedWhileHung = async (connect: Packet, version: 4 | 5): Promise<Packet> => {
    redis.pause();
    const refused = await RawMqtt.open(node.mqttPort, version);
    refused.send(connect, version);
    let connack: Packet;
    try {
      connack = await refused.next('connack', 10_000);
    } finally {
      redis.resume(); // the claim runs now
    }
    await refused.closed;
    await until(async () => (await health(node)) === 'running', 'the node running once Redis answers', 10_000);
    return connack;
  };

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
    expect(await refusedWhileHung(persistentConnect('keeper'), 4)).toMatchObject({ returnCode: 3 });

    const back = await RawMqtt.open(node.mqttPort);
    const started = Date.now();
    back.send(persistentConnect('keeper'));
    expect(await back.next('connack', 10_000), `after ${Date.now() - started} ms`).toMatchObject({ returnCode: 0, sessionPresent: true });
    expect(Date.now() - started).toBeLessThan(4000); // not the refused claim's hold waited out (close timeout + 2 s)
    expect(payloadsOf([await back.next('publish')])).toEqual(['"while away"']);
    back.socket.destroy();
    web.close();
  }, 40_000);

  it('a 5.0 resume with session expiry 0, refused so, leaves the session too (it ends with a connection that never began)', async () => {
    const v5 = (clean: boolean, expiry: number) => ({ cmd: 'connect', clientId: 'exp0r', keepalive: 0, clean, protocolId: 'MQTT', protocolVersion: 5, properties: { sessionExpiryInterval: expiry } }) as Packet;
    const first = await RawMqtt.open(node.mqttPort, 5);
    first.send(v5(true, 300), 5);
    await first.next('connack');
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'e0/#', qos: 1 }] } as Packet, 5);
    await first.next('suback');
    first.send({ cmd: 'disconnect' } as Packet, 5);
    await first.closed;
    await until(async () => (await inspect.hget('sb:{g}:mqtt:sessions:owners', 'exp0r')) === null, 'the session kept');

    expect(await refusedWhileHung(v5(false, 0), 5)).toMatchObject({ reasonCode: 0x88, sessionPresent: false });
    const back = await RawMqtt.open(node.mqttPort, 5);
    back.send(v5(false, 300), 5);
    expect(await back.next('connack', 10_000), 'the refused CONNECT removed the session').toMatchObject({ reasonCode: 0, sessionPresent: true });
    back.socket.destroy();
  }, 40_000);
});

describe.skipIf(!run)('MQTT 5.0: a session resumed with session expiry 0', () => {
  let redis: TestRedis;
  let proxy: RedisProxy;
  let node: TestBroker;
  let inspect: Redis;
  beforeAll(async () => {
    redis = await TestRedis.start();
    proxy = await RedisProxy.start(redis.port);
    inspect = new Redis(redis.port, '127.0.0.1');
    node = await startNode(redis, { redisUrl: proxy.url, mqttPort: 0, redisTimeoutMs: 1000, closeTimeoutMs: 300 });
  });
  afterAll(async () => {
    await node?.close();
    await proxy?.cut();
    inspect?.disconnect();
    await redis?.stop();
  }, 20_000);

  const v5 = (clean: boolean, expiry: number) => ({ cmd: 'connect', clientId: 'exp0', keepalive: 0, clean, protocolId: 'MQTT', protocolVersion: 5, properties: { sessionExpiryInterval: expiry } }) as Packet;
  const held = () => inspect.hget('sb:{g}:mqtt:sessions:owners', 'exp0');

  it('ends with its connection even when Redis cannot be reached as it ends: the next Clean Start 0 finds no session', async () => {
    const first = await RawMqtt.open(node.mqttPort, 5);
    first.send(v5(true, 300), 5);
    await first.next('connack');
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'old/#', qos: 1 }] } as Packet, 5);
    await first.next('suback');
    first.send({ cmd: 'disconnect' } as Packet, 5);
    await first.closed;
    await until(async () => (await held()) === null, 'the first session kept (its hold ended)');

    const second = await RawMqtt.open(node.mqttPort, 5);
    second.send(v5(false, 0), 5); // resumes it; with expiry 0 it ends with this connection
    expect(await second.next('connack')).toMatchObject({ reasonCode: 0, sessionPresent: true });
    // Redis is out of reach when the connection ends: its session's end cannot be written.
    await proxy.cut();
    const closed = await metric(node, 'switchboard_connections_closed_total');
    second.socket.destroy();
    await until(async () => (await metric(node, 'switchboard_connections_closed_total')) > closed, 'the broker saw the connection end');
    await proxy.restore();
    await until(async () => (await health(node)) === 'running', 'the node running again', 15_000);

    const third = await RawMqtt.open(node.mqttPort, 5);
    third.send(v5(false, 300), 5);
    expect(await third.next('connack', 10_000), 'a session with expiry 0 came back').toMatchObject({ reasonCode: 0, sessionPresent: false });
    third.socket.destroy();
  }, 40_000);
});

describe.skipIf(!run)('MQTT sessions in Redis: the bound after a resumed connection ended while Redis was out of reach', () => {
  const SESSIONS = 'sb:{g}:mqtt:sessions';
  let redis: TestRedis;
  let proxy: RedisProxy;
  let node: TestBroker;
  let inspect: Redis;
  beforeAll(async () => {
    redis = await TestRedis.start();
    proxy = await RedisProxy.start(redis.port);
    inspect = new Redis(redis.port, '127.0.0.1');
    node = await startNode(redis, { redisUrl: proxy.url, mqttPort: 0, mqttSessions: 2, redisTimeoutMs: 1000, closeTimeoutMs: 300 });
  });
  afterAll(async () => {
    await node?.close();
    await proxy?.cut();
    inspect?.disconnect();
    await redis?.stop();
  }, 20_000);

  /** A 3.1.1 session on `id/#` left by its client (kept: its hold ended). */
  const leave = async (id: string) => {
    const c = await RawMqtt.open(node.mqttPort);
    c.send(persistentConnect(id));
    await c.next('connack');
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${id}/#`, qos: 1 }] } as Packet);
    await c.next('suback');
    c.send({ cmd: 'disconnect' } as Packet);
    await c.closed;
    await until(async () => (await inspect.hget(`${SESSIONS}:owners`, id)) === null, `${id}'s session kept`);
  };

  it('what it resumed is counted in --mqtt-sessions again once Redis is back (its release is retried), not stored outside it', async () => {
    await leave('gone');
    const back = await RawMqtt.open(node.mqttPort);
    back.send(persistentConnect('gone'));
    expect(await back.next('connack')).toMatchObject({ returnCode: 0, sessionPresent: true });
    // Redis is out of reach as the connection ends: neither its keep nor the release after it can be written.
    await proxy.cut();
    await until(async () => (await health(node)) !== 'running', 'the node sees Redis gone');
    const closed = await metric(node, 'switchboard_connections_closed_total');
    back.socket.destroy();
    await until(async () => (await metric(node, 'switchboard_connections_closed_total')) > closed, 'the broker saw the connection end');
    await proxy.restore();
    await until(async () => (await inspect.hget(`${SESSIONS}:owners`, 'gone')) === null, 'its hold released once Redis is back');
    // The client never comes back; three others leave sessions.
    for (const id of ['p', 'q', 'r']) await leave(id);
    const stored = (await inspect.hkeys(SESSIONS)).sort();
    const counted = (await inspect.zrange(`${SESSIONS}:kept`, '0', '-1')).sort();
    expect({ stored, counted }).toEqual({ stored: ['q', 'r'], counted: ['q', 'r'] });
  }, 60_000);
});

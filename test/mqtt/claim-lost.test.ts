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
const SESSIONS = 'sb:{g}:mqtt:sessions';
/** --close-timeout-ms of nodes whose tests show a hold was not waited out: one waited out (this plus 2 s) outlasts each test. */
const HOLD_OUTLASTS_TESTS_MS = 60_000;

/** A 5.0 CONNECT of `clientId`: Clean Start `clean`, session expiry `expiry` s. */
const v5 = (clientId: string, clean: boolean, expiry: number) => ({ cmd: 'connect', clientId, keepalive: 0, clean, protocolId: 'MQTT', protocolVersion: 5, properties: { sessionExpiryInterval: expiry } }) as Packet;

/** A session of `id` on `id/#` left by its client (CONNECT `connect`, SUBSCRIBE, DISCONNECT), once kept: its hold ended. */
async function leaveSession(port: number, inspect: Redis, id: string, connect: Packet = persistentConnect(id), version: 4 | 5 = 4): Promise<void> {
  const c = await RawMqtt.open(port, version);
  c.send(connect, version);
  await c.next('connack');
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${id}/#`, qos: 1 }] } as Packet, version);
  await c.next('suback');
  c.send({ cmd: 'disconnect' } as Packet, version);
  await c.closed;
  await until(async () => (await inspect.hget(`${SESSIONS}:owners`, id)) === null, `${id}'s session kept`);
}

describe.skipIf(!run)('MQTT: a session claim Redis did not answer', () => {
  let redis: TestRedis;
  let node: TestBroker;
  let inspect: Redis;
  beforeAll(async () => {
    redis = await TestRedis.start();
    inspect = new Redis(redis.port, '127.0.0.1');
    // A close timeout longer than these tests may take: a CONNECT that waited out an earlier connection's hold (the
    // close timeout plus 2 s) would not be answered within them, so being answered shows it did not.
    node = await startNode(redis, { mqttPort: 0, redisTimeoutMs: 1000, nodeTickMs: 100, nodeTtlMs: 5000, closeTimeoutMs: HOLD_OUTLASTS_TESTS_MS });
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

    // Answered at all: the refused claim's hold was released (or overridden), not waited out (a minute, above).
    const back = await RawMqtt.open(node.mqttPort);
    back.send(persistentConnect('keeper'));
    expect(await back.next('connack', 10_000)).toMatchObject({ returnCode: 0, sessionPresent: true });
    expect(payloadsOf([await back.next('publish')])).toEqual(['"while away"']);
    back.socket.destroy();
    web.close();
  }, 40_000);

  it('a 5.0 resume with session expiry 0, refused so, leaves the session too (it ends with a connection that never began)', async () => {
    await leaveSession(node.mqttPort, inspect, 'exp0r', v5('exp0r', true, 300), 5);
    expect(await refusedWhileHung(v5('exp0r', false, 0), 5)).toMatchObject({ reasonCode: 0x88, sessionPresent: false });
    const back = await RawMqtt.open(node.mqttPort, 5);
    back.send(v5('exp0r', false, 300), 5);
    expect(await back.next('connack', 10_000), 'the refused CONNECT removed the session').toMatchObject({ reasonCode: 0, sessionPresent: true });
    back.socket.destroy();
  }, 40_000);
});

describe.skipIf(!run)('MQTT sessions when Redis is out of reach as a connection ends', () => {
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

  const held = (id: string) => inspect.hget(`${SESSIONS}:owners`, id);
  const leave = (id: string, connect?: Packet, version?: 4 | 5) => leaveSession(node.mqttPort, inspect, id, connect, version);
  /**
   * A connection that resumes `id`'s session with `connect`, once its filter is held again: a cut while the resume's
   * reads were out could end the connection before the test does (it counted as the end the test then waited for).
   */
  const resume = async (connect: Packet, version: 4 | 5): Promise<RawMqtt> => {
    const c = await RawMqtt.open(node.mqttPort, version);
    c.send(connect, version);
    expect(await c.next('connack')).toMatchObject({ sessionPresent: true });
    const id = (connect as { clientId: string }).clientId;
    await until(() => node.hub.inspect.holders(`${id}/#`).length === 1, `${id}'s filter resumed`);
    return c;
  };
  /** Ends `c`'s connection while the node cannot reach Redis (neither its keep nor its release can be written), then lets Redis back. */
  const endWithoutRedis = async (c: RawMqtt) => {
    await proxy.cut();
    await until(async () => (await health(node)) !== 'running', 'the node sees Redis gone');
    const closed = await metric(node, 'switchboard_connections_closed_total');
    c.socket.destroy();
    await until(async () => (await metric(node, 'switchboard_connections_closed_total')) > closed, 'the broker saw the connection end');
    await proxy.restore();
    await until(async () => (await health(node)) === 'running', 'the node running again', 15_000);
  };

  it('a 5.0 session with expiry 0 ends with its connection all the same: the next Clean Start 0 finds no session', async () => {
    await leave('exp0', v5('exp0', true, 300), 5);
    await endWithoutRedis(await resume(v5('exp0', false, 0), 5));
    const third = await RawMqtt.open(node.mqttPort, 5);
    third.send(v5('exp0', false, 300), 5);
    expect(await third.next('connack', 10_000), 'a session with expiry 0 came back').toMatchObject({ reasonCode: 0, sessionPresent: false });
    third.socket.destroy();
  }, 40_000);

  /**
   * A 5.0 resume with expiry 0 of `id` on the node behind the proxy whose claim reaches Redis and whose connection then
   * breaks before the answer: refused, its hold left in Redis, its release waiting for a retry.
   */
  const refusedAfterClaim = async (id: string, restore = true) => {
    // After the session was kept, the next command with the session keys is this CONNECT's claim.
    proxy.whenForwarded(`${SESSIONS}:ending`, () => void proxy.cut());
    const refused = await RawMqtt.open(node.mqttPort, 5);
    refused.send(v5(id, false, 0), 5);
    expect(await refused.next('connack', 10_000)).toMatchObject({ reasonCode: 0x88 });
    expect(await held(id)).not.toBeNull(); // the claim ran
    if (!restore) return;
    await proxy.restore();
    await until(async () => (await health(node)) === 'running', 'the node running again', 15_000);
  };

  it('a refused 5.0 resume with expiry 0 whose release could not be written leaves the session to a CONNECT right after', async () => {
    await leave('exp0cut', v5('exp0cut', true, 300), 5);
    await refusedAfterClaim('exp0cut');
    // The client comes back at once: the refused connection's hold is released before this claim, not overridden.
    const back = await RawMqtt.open(node.mqttPort, 5);
    back.send(v5('exp0cut', false, 300), 5);
    expect(await back.next('connack', 10_000), 'the refused CONNECT removed the session').toMatchObject({ reasonCode: 0, sessionPresent: true });
    back.socket.destroy();
  }, 40_000);

  it('… and to the client on another node, which overrides that hold (its node still cut off) after its wait', async () => {
    const other = await startNode(redis, { mqttPort: 0, redisTimeoutMs: 1000, closeTimeoutMs: 300 });
    try {
      await leave('exp0far', v5('exp0far', true, 300), 5);
      await refusedAfterClaim('exp0far', false);
      const back = await RawMqtt.open(other.mqttPort, 5);
      back.send(v5('exp0far', false, 300), 5);
      expect(await back.next('connack', 15_000), 'the refused CONNECT removed the session').toMatchObject({ reasonCode: 0, sessionPresent: true });
      back.socket.destroy();
    } finally {
      await proxy.restore();
      await until(async () => (await health(node)) === 'running', 'the node running again', 15_000);
      await other.close();
    }
  }, 40_000);

  it('a 5.0 expiry-0 resume whose ending mark reached Redis unanswered is accepted (refused, the mark would outlive it and a later claim remove the session)', async () => {
    await leave('mrk', v5('mrk', true, 300), 5);
    // MARK_ENDING's keys are owners and ending, then the client id (TAKE's ending key is followed by its `now`).
    proxy.whenForwarded(`${SESSIONS}:ending\r\n$3\r\nmrk\r\n`, () => void proxy.cut());
    const first = await RawMqtt.open(node.mqttPort, 5);
    first.send(v5('mrk', false, 0), 5);
    expect(await first.next('connack', 10_000)).toMatchObject({ reasonCode: 0, sessionPresent: true });
    expect(await inspect.hget(`${SESSIONS}:ending`, 'mrk')).not.toBeNull(); // the mark was made
    first.socket.destroy();
    await proxy.restore();
    await until(async () => (await health(node)) === 'running', 'the node running again', 15_000);
    // It ended with its connection, as the client asked (its drop retried once Redis answers).
    const back = await RawMqtt.open(node.mqttPort, 5);
    back.send(v5('mrk', false, 300), 5);
    expect(await back.next('connack', 10_000)).toMatchObject({ reasonCode: 0, sessionPresent: false });
    back.socket.destroy();
  }, 40_000);

  it('what a resumed connection held is counted in --mqtt-sessions again once Redis is back (its release retried), not stored outside it', async () => {
    await leave('gone');
    await endWithoutRedis(await resume(persistentConnect('gone'), 4));
    await until(async () => (await held('gone')) === null, 'its hold released once Redis is back');
    // The client never comes back; three others leave sessions.
    for (const id of ['p', 'q', 'r']) await leave(id);
    const stored = (await inspect.hkeys(SESSIONS)).sort();
    const counted = (await inspect.zrange(`${SESSIONS}:kept`, '0', '-1')).sort();
    expect({ stored, counted }).toEqual({ stored: ['q', 'r'], counted: ['q', 'r'] });
  }, 60_000);
});

describe.skipIf(!run)('MQTT sessions: a release Redis answers with an error reply that passes (BUSY)', () => {
  let redis: TestRedis;
  let node: TestBroker;
  let inspect: Redis;
  let busy: Redis;
  beforeAll(async () => {
    redis = await TestRedis.start();
    inspect = new Redis(redis.port, '127.0.0.1');
    busy = new Redis(redis.port, '127.0.0.1');
    await inspect.config('SET', 'busy-reply-threshold', '50');
    // A close timeout longer than the test may take: a CONNECT that waited out the ended connection's hold (the close
    // timeout plus 2 s) would not be answered within it, so being answered shows it did not.
    node = await startNode(redis, { mqttPort: 0, closeTimeoutMs: HOLD_OUTLASTS_TESTS_MS });
  });
  afterAll(async () => {
    await node?.close();
    inspect?.disconnect();
    busy?.disconnect();
    await redis?.stop();
  }, 20_000);

  it('is retried: the ended connection\'s hold is released before the next CONNECT, not waited out', async () => {
    await leaveSession(node.mqttPort, inspect, 'busy0', v5('busy0', true, 300), 5);
    const live = await RawMqtt.open(node.mqttPort, 5);
    live.send(v5('busy0', false, 0), 5);
    expect(await live.next('connack')).toMatchObject({ reasonCode: 0, sessionPresent: true });
    // A script runs for 1.5 s: every other command is answered BUSY meanwhile, the connection's release too.
    const script = busy.eval("local t = redis.call('TIME') local s = t[1]*1000 + t[2]/1000 repeat t = redis.call('TIME') until t[1]*1000 + t[2]/1000 - s > 1500 return 1", 0);
    const probe = new Redis(redis.port, '127.0.0.1');
    probe.on('error', () => undefined); // its BUSY is what the ping below waits for, not an unhandled error event
    await until(async () => probe.ping().then(() => false, (e: Error) => /BUSY/.test(e.message)), 'Redis busy', 5000);
    probe.disconnect();
    const closed = await metric(node, 'switchboard_connections_closed_total');
    live.socket.destroy();
    await until(async () => (await metric(node, 'switchboard_connections_closed_total')) > closed, 'the broker saw the connection end');
    await script;
    const back = await RawMqtt.open(node.mqttPort, 5);
    back.send(v5('busy0', false, 300), 5);
    expect(await back.next('connack', 15_000), 'the next CONNECT waited out the ended connection\'s hold').toMatchObject({ reasonCode: 0, sessionPresent: false });
    back.socket.destroy();
  }, 40_000);
});

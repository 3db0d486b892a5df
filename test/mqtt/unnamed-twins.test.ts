// Two CONNECTs of one client id that is no broker name (`c<n>`, over 64 characters), on two nodes at once. The one
// that claimed the session first (on A) is not open yet when the other (on B) asks A to close it: A found nothing to
// close, B asked once per hold, then waited out the hold and overrode it — and both connections stayed open, on two
// nodes, with one client id (found by a review helper). B now asks again while it waits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { RedisProxy, redisCli, requireRedis, startNode, TestRedis, until } from '../cluster/redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';
import { persistentConnect, RawMqtt } from '../helpers/raw-mqtt.js';

const run = requireRedis('two CONNECTs of an unnamed client id on two nodes');

describe.skipIf(!run)('two CONNECTs of an unnamed client id on two nodes at once', () => {
  let redis: TestRedis;
  let a: TestBroker;
  let b: TestBroker;
  let proxy: RedisProxy;
  beforeAll(async () => {
    redis = await TestRedis.start();
    proxy = await RedisProxy.start(redis.port);
    a = await startNode(redis, { mqttPort: 0, redisUrl: proxy.url, closeTimeoutMs: 1000 });
    b = await startNode(redis, { mqttPort: 0, closeTimeoutMs: 1000 });
  });
  afterAll(async () => {
    proxy?.releaseReplies();
    await a?.close();
    await b?.close();
    await proxy?.cut();
    await redis?.stop();
  }, 30_000);

  it('only one of them stays connected', async () => {
    const clientId = 'c4242';
    // A session kept with a filter.
    const first = await RawMqtt.open(b.mqttPort);
    first.send(persistentConnect(clientId));
    await first.next('connack');
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'twins/#', qos: 1 }] } as Packet);
    await first.next('suback');
    first.send({ cmd: 'disconnect' } as Packet);
    await first.closed;
    await until(async () => (await redisCli(redis.port, 'HGET', 'sb:{g}:mqtt:sessions:owners', clientId)) === '', 'the session kept');
    // A's claim reaches Redis first; its answer comes back a little late (a slow link), so A opens the connection
    // a moment after B asked it to close one.
    proxy.holdRepliesOf(clientId);
    const x = await RawMqtt.open(a.mqttPort);
    x.send(persistentConnect(clientId));
    await until(() => proxy.holdingReplies, 'A\'s claim made, its answer held');
    // A answers a node call with `{"a":<call id>,…}`, through the proxy (only Redis's replies to A are held).
    let asked = false;
    proxy.whenForwarded('{"a":"', () => (asked = true));
    const y = await RawMqtt.open(b.mqttPort);
    y.send(persistentConnect(clientId));
    await until(() => asked, "B's claim met A's hold and asked A, which answered with nothing open yet");
    proxy.releaseReplies();
    await Promise.all([x.next('connack', 10_000).catch(() => null), y.next('connack', 10_000).catch(() => null)]);
    const open = () => [x, y].filter((c) => !c.socket.destroyed && !c.socket.readableEnded);
    await until(() => open().length === 1, 'one of the two connections taken over', 10_000);
    const web = await TestClient.connect(b.url);
    await web.request({ op: 'pub', topic: 'twins/1', data: 'one', qos: 1 });
    await until(() => open()[0]!.published.includes('"one"'), 'the one left gets the message');
    expect(open().length).toBe(1);
    web.close();
    x.socket.destroy();
    y.socket.destroy();
  }, 30_000);
});

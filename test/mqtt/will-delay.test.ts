// MQTT 5.0 Will Delay Interval (§3.1.3.2.2) over real sockets with mqtt-packet: a will goes once its delay has passed
// or its session ends, whichever is first, and not at all when the session is resumed before [MQTT-3.1.3-9]. Delays
// of 1 s where the will must come (a lower bound on when it came: a timer fires late under load, never early); 60 s
// where it must not, shown by what the broker says waits (`switchboard_mqtt_wills_delayed` on /metrics: nothing
// waiting, nothing can be published later) and by a message published after, which arrives with no will before it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { connect5, RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';
import { metric } from '../cluster/redis.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());

/** Wills waiting for their delay on `node`, as its /metrics says. */
const willsDelayed = (node: TestBroker): Promise<number> => metric(node, 'switchboard_mqtt_wills_delayed');

interface Options {
  clientId: string;
  /** Its will (on `topic`, payload `will:<clientId>`) and the will's delay in seconds; none without `topic`. */
  topic?: string;
  delay?: number;
  /** The session expiry interval (s): 0 or absent, the session ends with the connection. */
  expiry?: number;
  clean?: boolean;
}

function connect(port: number, o: Options): Promise<{ c: RawMqtt; connack: Packet }> {
  const will = o.topic === undefined ? undefined : { topic: o.topic, delay: o.delay ?? 0 };
  return connect5(port, o.clientId, { clean: o.clean, will, properties: { sessionExpiryInterval: o.expiry ?? 0 } });
}

/** A subscriber of `topic`: what it received, as text. */
async function watcher(port: number, clientId: string, topic: string): Promise<RawMqtt> {
  const { c } = await connect(port, { clientId });
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] } as Packet, 5);
  await c.next('suback');
  return c;
}

/** Publishes `text` on `topic` from a connection of its own, and waits until `w` has it: what `w` got before is all it gets before it. */
async function mark(port: number, topic: string, text: string, w: RawMqtt): Promise<void> {
  const { c } = await connect(port, { clientId: `mark-${text}` });
  c.send({ cmd: 'publish', topic, payload: Buffer.from(text), qos: 1, messageId: 1, retain: false, dup: false } as Packet, 5);
  await c.next('puback');
  c.socket.destroy();
  await until(() => w.published.includes(text), `the marker '${text}'`);
}

/** Drops `c` without DISCONNECT (its will stands); resolves with when, once its socket is closed. */
async function drop(c: RawMqtt): Promise<number> {
  const at = Date.now();
  c.socket.destroy();
  await c.closed;
  return at;
}

describe('5.0 Will Delay Interval', () => {
  it('the will goes once its delay has passed, not when the connection closes', async () => {
    const w = await watcher(broker.mqttPort, 'wd1-watch', 'wd/1');
    const { c } = await connect(broker.mqttPort, { clientId: 'wd1', topic: 'wd/1', delay: 1, expiry: 300 });
    const at = await drop(c);
    await until(() => w.published.includes('will:wd1'), 'the will');
    expect(Date.now() - at).toBeGreaterThanOrEqual(950);
    expect(await willsDelayed(broker)).toBe(0);
    w.socket.destroy();
  });

  it('a reconnect to the session before the delay has passed: the will is not sent [MQTT-3.1.3-9]', async () => {
    const w = await watcher(broker.mqttPort, 'wd2-watch', 'wd/2');
    const { c } = await connect(broker.mqttPort, { clientId: 'wd2', topic: 'wd/2', delay: 60, expiry: 300 });
    await drop(c);
    await until(async () => (await willsDelayed(broker)) === 1, 'the will waiting');
    const again = await connect(broker.mqttPort, { clientId: 'wd2', expiry: 300, clean: false });
    expect(again.connack).toMatchObject({ reasonCode: 0, sessionPresent: true });
    expect(await willsDelayed(broker)).toBe(0);
    // It leaves normally this time (no will of its own); the will of the first connection never comes.
    again.c.send({ cmd: 'disconnect', reasonCode: 0 } as Packet, 5);
    await again.c.closed;
    await mark(broker.mqttPort, 'wd/2', 'after', w);
    expect(w.published).toEqual(['after']);
    w.socket.destroy();
  });

  it('a reconnect after the delay has passed does not bring the will back (nor send it twice)', async () => {
    const w = await watcher(broker.mqttPort, 'wd3-watch', 'wd/3');
    const { c } = await connect(broker.mqttPort, { clientId: 'wd3', topic: 'wd/3', delay: 1, expiry: 300 });
    await drop(c);
    await until(() => w.published.includes('will:wd3'), 'the will');
    const again = await connect(broker.mqttPort, { clientId: 'wd3', topic: 'wd/3', delay: 1, expiry: 300, clean: false });
    expect(again.connack).toMatchObject({ sessionPresent: true });
    again.c.send({ cmd: 'disconnect', reasonCode: 0 } as Packet, 5); // its own will discarded
    await again.c.closed;
    await mark(broker.mqttPort, 'wd/3', 'after', w);
    expect(w.published).toEqual(['will:wd3', 'after']);
    w.socket.destroy();
  });

  it('a session expiry shorter than the will delay: the will goes when the session ends', async () => {
    const w = await watcher(broker.mqttPort, 'wd4-watch', 'wd/4');
    const { c } = await connect(broker.mqttPort, { clientId: 'wd4', topic: 'wd/4', delay: 60, expiry: 1 });
    const at = await drop(c);
    await until(() => w.published.includes('will:wd4'), 'the will, at the end of the session (1 s), not of its delay (60 s)');
    expect(Date.now() - at).toBeGreaterThanOrEqual(950);
    w.socket.destroy();
  });

  it('a session that ends with its connection (no session expiry): the will goes at once, its delay notwithstanding', async () => {
    const w = await watcher(broker.mqttPort, 'wd5-watch', 'wd/5');
    const { c } = await connect(broker.mqttPort, { clientId: 'wd5', topic: 'wd/5', delay: 60 });
    await drop(c);
    await until(() => w.published.includes('will:wd5'), 'the will');
    expect(await willsDelayed(broker)).toBe(0);
    w.socket.destroy();
  });

  it('a reconnect with clean start 1 before the delay has passed ends the session: the will goes then', async () => {
    const w = await watcher(broker.mqttPort, 'wd6-watch', 'wd/6');
    const { c } = await connect(broker.mqttPort, { clientId: 'wd6', topic: 'wd/6', delay: 60, expiry: 300 });
    await drop(c);
    await until(async () => (await willsDelayed(broker)) === 1, 'the will waiting');
    const again = await connect(broker.mqttPort, { clientId: 'wd6', expiry: 300, clean: true });
    expect(again.connack).toMatchObject({ sessionPresent: false });
    await until(() => w.published.includes('will:wd6'), 'the will, as the clean start ended its session');
    expect(await willsDelayed(broker)).toBe(0);
    again.c.socket.destroy();
    w.socket.destroy();
  });

  it('a takeover: clean start 0 keeps the session, so the old connection\'s delayed will is not sent; clean start 1 sends it', async () => {
    const w = await watcher(broker.mqttPort, 'wd7-watch', 'wd/7');
    const first = await connect(broker.mqttPort, { clientId: 'wd7', topic: 'wd/7', delay: 60, expiry: 300 });
    const second = await connect(broker.mqttPort, { clientId: 'wd7', topic: 'wd/7', delay: 60, expiry: 300, clean: false });
    expect(second.connack).toMatchObject({ reasonCode: 0, sessionPresent: true });
    expect(await first.c.next('disconnect')).toMatchObject({ reasonCode: 0x8e }); // session taken over
    expect(await willsDelayed(broker)).toBe(0);
    await mark(broker.mqttPort, 'wd/7', 'taken', w);
    expect(w.published).toEqual(['taken']);
    // Now a clean start takes the second over: its session ends, and with it the wait of its will.
    const third = await connect(broker.mqttPort, { clientId: 'wd7', expiry: 300, clean: true });
    expect(third.connack).toMatchObject({ reasonCode: 0, sessionPresent: false });
    await until(() => w.published.includes('will:wd7'), 'the second connection\'s will');
    expect(w.published).toEqual(['taken', 'will:wd7']);
    expect(await willsDelayed(broker)).toBe(0);
    third.c.socket.destroy();
    w.socket.destroy();
  });

  it('DISCONNECT 0x00 discards a will with a delay too; 0x04 keeps it, delayed', async () => {
    const w = await watcher(broker.mqttPort, 'wd8-watch', 'wd/8');
    const a = await connect(broker.mqttPort, { clientId: 'wd8a', topic: 'wd/8', delay: 1, expiry: 300 });
    a.c.send({ cmd: 'disconnect', reasonCode: 0 } as Packet, 5);
    await a.c.closed;
    const b = await connect(broker.mqttPort, { clientId: 'wd8b', topic: 'wd/8', delay: 1, expiry: 300 });
    const at = Date.now();
    b.c.send({ cmd: 'disconnect', reasonCode: 0x04 } as Packet, 5); // disconnect with will message
    await b.c.closed;
    await until(() => w.published.includes('will:wd8b'), 'the will asked for');
    expect(Date.now() - at).toBeGreaterThanOrEqual(950);
    await mark(broker.mqttPort, 'wd/8', 'after', w);
    expect(w.published).toEqual(['will:wd8b', 'after']);
    w.socket.destroy();
  });
});

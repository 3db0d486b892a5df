// MQTT 5.0 Will Delay Interval on two nodes of one Redis, over real sockets with mqtt-packet: a will waits on the node
// its connection was on, and the node where the client comes back settles it there (a node call): resumed before the
// delay, it is dropped [MQTT-3.1.3-9]; a clean start ends the session, and it goes then. A node that stops publishes
// the wills still waiting on it (their timers do not outlive it). What waits is read from each node's /metrics
// (`switchboard_mqtt_wills_delayed`); a will that must not come is shown absent by a message published after it.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { metric, mqttNodes, requireRedis, startNode, type TestRedis, until } from '../cluster/redis.js';
import type { TestBroker } from '../helpers/broker.js';
import { connect5, RawMqtt } from '../helpers/raw-mqtt.js';

const run = requireRedis('mqtt will delay on a cluster');

let redis: TestRedis;
let a: TestBroker;
let b: TestBroker;

const willsDelayed = (node: TestBroker): Promise<number> => metric(node, 'switchboard_mqtt_wills_delayed');

function connect(node: TestBroker, clientId: string, clean: boolean, will?: { topic: string; delay: number }): Promise<{ c: RawMqtt; connack: Packet }> {
  return connect5(node.mqttPort, clientId, { clean, will, properties: { sessionExpiryInterval: 300 } });
}

async function watcher(node: TestBroker, clientId: string, topic: string): Promise<RawMqtt> {
  const { c } = await connect(node, clientId, true);
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] } as Packet, 5);
  await c.next('suback');
  return c;
}

/** Publishes `text` on `topic` on `node`, and waits until `w` has it: what `w` got before is all it gets before it. */
async function mark(node: TestBroker, topic: string, text: string, w: RawMqtt): Promise<void> {
  const { c } = await connect(node, `mark-${text}`, true);
  c.send({ cmd: 'publish', topic, payload: Buffer.from(text), qos: 1, messageId: 1, retain: false, dup: false } as Packet, 5);
  await c.next('puback');
  c.socket.destroy();
  await until(() => w.published.includes(text), `the marker '${text}'`);
}

/** `clientId`'s connection on `node` with a will of `delay` s on `topic`, dropped (no DISCONNECT): its will waits on `node`. */
async function leftWaiting(node: TestBroker, clientId: string, topic: string, delay = 60): Promise<void> {
  const before = await willsDelayed(node);
  const { c } = await connect(node, clientId, true, { topic, delay });
  c.socket.destroy();
  await until(async () => (await willsDelayed(node)) === before + 1, 'the will waiting on its node');
}

describe.skipIf(!run)('MQTT will delay on two nodes of one Redis', () => {
  const nodes = mqttNodes();
  beforeAll(() => void ({ redis, a, b } = nodes));

  it('a will left waiting on A is not sent when the session resumes on B before its delay', async () => {
    const w = await watcher(b, 'wdc1-watch', 'wdc/1');
    await leftWaiting(a, 'wdc1', 'wdc/1');
    const again = await connect(b, 'wdc1', false);
    expect(again.connack).toMatchObject({ reasonCode: 0, sessionPresent: true });
    await until(async () => (await willsDelayed(a)) === 0, 'A dropping the will');
    again.c.send({ cmd: 'disconnect', reasonCode: 0 } as Packet, 5);
    await again.c.closed;
    await mark(a, 'wdc/1', 'after', w);
    expect(w.published).toEqual(['after']);
    w.socket.destroy();
  });

  it('a clean start on B ends the session whose will waits on A: the will goes then', async () => {
    const w = await watcher(b, 'wdc2-watch', 'wdc/2');
    await leftWaiting(a, 'wdc2', 'wdc/2');
    const again = await connect(b, 'wdc2', true);
    expect(again.connack).toMatchObject({ reasonCode: 0, sessionPresent: false });
    await until(() => w.published.includes('will:wdc2'), 'the will, as the clean start ended its session');
    expect(await willsDelayed(a)).toBe(0);
    again.c.socket.destroy();
    w.socket.destroy();
  });

  it('a node that stops publishes the wills still waiting on it', async () => {
    const c = await startNode(redis, { mqttPort: 0 });
    const w = await watcher(b, 'wdc3-watch', 'wdc/3');
    await leftWaiting(c, 'wdc3', 'wdc/3', 3600);
    await c.close();
    await until(() => w.published.includes('will:wdc3'), 'the will, published as its node stopped');
    w.socket.destroy();
  });
});

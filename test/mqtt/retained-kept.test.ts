// A retained publish the broker took (delivered live) is kept as the topic's retained message whatever happens to the
// publisher's connection after, and the last publish of a topic wins on one node too: it was kept only when the
// publisher's own reply was written, so a congested publisher's older message overwrote a newer one, and one whose
// connection died first was never kept (found by a review helper).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(() => broker.close());
const connect = (clientId: string) => ({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4 }) as Packet;
const pub = (topic: string, text: string, qos: 0 | 1 = 0, messageId = 1) =>
  ({ cmd: 'publish', topic, payload: Buffer.from(text), qos, ...(qos ? { messageId } : {}), dup: false, retain: true }) as Packet;

async function client(id: string): Promise<RawMqtt> {
  const c = await RawMqtt.open(broker.mqttPort);
  c.send(connect(id));
  await c.next('connack');
  return c;
}
async function retainedOf(topic: string, id: string): Promise<string[]> {
  const s = await client(id);
  s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] } as Packet);
  await s.next('suback');
  await until(() => s.published.length > 0, `a retained message on ${topic}`, 5000).catch(() => undefined);
  s.socket.destroy();
  return s.published;
}

it('a retained publish delivered live is kept, though its publisher left at once (no DISCONNECT)', async () => {
  const live = await client('r24-live');
  live.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r24/a', qos: 0 }] } as Packet);
  await live.next('suback');
  const p = await client('r24-pub');
  p.send(pub('r24/a', '"dev-state"'));
  p.socket.end(); // a device that publishes its state and hangs up
  await until(() => live.published.length === 1, 'the publish delivered live');
  expect(live.published).toEqual(['"dev-state"']);
  expect(await retainedOf('r24/a', 'r24-sub')).toEqual(['"dev-state"']);
  live.socket.destroy();
});

it('the last retained publish of a topic wins, though the earlier publisher\'s connection is congested', async () => {
  const watch = await client('r24-watch');
  watch.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r24/b', qos: 0 }] } as Packet);
  await watch.next('suback');
  // A subscribes to a flood and stops reading: its socket is congested, its mailbox holds what comes next.
  const a = await client('r24-a');
  a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r24/flood', qos: 0 }] } as Packet);
  await a.next('suback');
  a.socket.pause();
  const f = await client('r24-f');
  const big = 'x'.repeat(60_000);
  for (let i = 0; i < 80; i++) f.send({ cmd: 'publish', topic: 'r24/flood', payload: Buffer.from(`"${big}"`), qos: 0, dup: false, retain: false } as Packet);
  f.send({ cmd: 'publish', topic: 'r24/flood-done', payload: Buffer.from('1'), qos: 1, messageId: 9, dup: false, retain: false } as Packet);
  await f.next('puback');
  const congested = (name: string) => {
    const l = broker.hub.inspect.findClient(name);
    return l !== undefined && l.mailbox.depth + l.wire.bufferedBytes > 0;
  };
  await until(() => congested('r24-a'), "A's connection holding what it cannot write");
  // A publishes first, B after (the watcher sees them in that order): B's is the topic's retained message.
  a.send(pub('r24/b', '"older"'));
  await until(() => watch.published.length === 1, 'A delivered');
  const b = await client('r24-b');
  b.send(pub('r24/b', '"newer"', 1));
  await b.next('puback');
  await until(() => watch.published.length === 2, 'B delivered');
  expect(watch.published).toEqual(['"older"', '"newer"']);
  a.socket.resume(); // A reads again: its mailbox drains
  await until(() => !congested('r24-a'), "A's connection drained", 10_000);
  expect(await retainedOf('r24/b', 'r24-sub2')).toEqual(['"newer"']);
  for (const c of [a, b, f, watch]) c.socket.destroy();
});

it('a retained publish delivered live is kept, though its congested publisher\'s connection then dies', async () => {
  const watch = await client('r24-watch3');
  watch.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r24/c', qos: 0 }] } as Packet);
  await watch.next('suback');
  const a = await client('r24-a3');
  a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r24/flood3', qos: 0 }] } as Packet);
  await a.next('suback');
  a.socket.pause();
  const f = await client('r24-f3');
  const big = 'x'.repeat(60_000);
  for (let i = 0; i < 80; i++) f.send({ cmd: 'publish', topic: 'r24/flood3', payload: Buffer.from(`"${big}"`), qos: 0, dup: false, retain: false } as Packet);
  f.send({ cmd: 'publish', topic: 'r24/flood3-done', payload: Buffer.from('1'), qos: 1, messageId: 9, dup: false, retain: false } as Packet);
  await f.next('puback');
  await until(() => {
    const l = broker.hub.inspect.findClient('r24-a3');
    return l !== undefined && l.mailbox.depth + l.wire.bufferedBytes > 0;
  }, "A's connection holding what it cannot write");
  a.send(pub('r24/c', '"state"'));
  await until(() => watch.published.length === 1, 'A delivered');
  a.socket.destroy(); // its device loses power
  await until(() => broker.hub.inspect.findClient('r24-a3') === undefined, 'A gone');
  expect(await retainedOf('r24/c', 'r24-sub3')).toEqual(['"state"']);
  for (const c of [f, watch]) c.socket.destroy();
});

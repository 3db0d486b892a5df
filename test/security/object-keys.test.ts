// Topics named like Object.prototype's members (`__proto__`, `constructor`, `toString`, …) are topics like any:
// a position on one is checked, never taken for held because `{}` has such a property. Over real sockets, on the
// in-memory engine and on the Redis engine. (Before: `sub "__proto__" since:1 epoch:"bogus"` answered
// `recovered: true`, and `sub "+"` with `since {"toString": 5}` too, for a topic the broker never held.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient, type Frame } from '../helpers/client.js';
import { requireRedis, startNode, TestRedis } from '../cluster/redis.js';

/** Every own property name of Object.prototype: `__proto__`, `constructor`, `toString`, `hasOwnProperty`, … */
export const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);

/** `{[key]: value}` with `key` an own property even when it is `__proto__` (a literal would set the prototype). */
const own = <V>(key: string, value: V): Record<string, V> => Object.fromEntries([[key, value]]) as Record<string, V>;

function expectNotRecovered(ack: Frame, topic: string, reason: string): void {
  expect(ack, JSON.stringify(ack)).toMatchObject({ op: 'ack', recovered: false, reason });
  expect(Object.hasOwn(ack.missed, topic), `missed names '${topic}': ${JSON.stringify(ack)}`).toBe(true);
  expect(ack.missed[topic]).toBe(reason);
}

const runRedis = requireRedis('object keys on the Redis engine');
const engines: [string, boolean, () => Promise<{ broker: TestBroker; stop: () => Promise<void> }>][] = [
  ['in-memory engine', true, async () => {
    const broker = await startTestBroker();
    return { broker, stop: () => broker.close() };
  }],
  ['Redis engine', runRedis, async () => {
    const redis = await TestRedis.start();
    const broker = await startNode(redis);
    return { broker, stop: async () => (await broker.close(), await redis.stop()) };
  }],
];

describe.each(engines)('topics named like Object.prototype members (%s)', (_name, enabled, start) => {
  let broker: TestBroker;
  let stop: () => Promise<void>;
  let c: TestClient;
  beforeAll(async () => {
    if (!enabled) return;
    ({ broker, stop } = await start());
    c = await TestClient.connect(broker.url);
  });
  afterAll(async () => {
    c?.close();
    await stop?.();
  });

  it.skipIf(!enabled)('a position on a topic the broker never held is unknown_position, in a wildcard map', async () => {
    for (const name of PROTOTYPE_NAMES) {
      const ack = await c.request({ op: 'sub', topic: '+', since: own(name, 5), life: 'elsewhere' });
      expectNotRecovered(ack, name, 'unknown_position');
      expect(Object.hasOwn(ack.positions, name)).toBe(false);
      await c.request({ op: 'unsub', topic: '+' });
    }
  });

  it.skipIf(!enabled)('a wrong epoch is epoch_changed, a seq beyond the last unknown_position; the right one replays', async () => {
    const pub = await TestClient.connect(broker.url);
    for (const name of PROTOTYPE_NAMES) {
      const first = await pub.request({ op: 'pub', topic: name, data: 1 });
      await pub.request({ op: 'pub', topic: name, data: 2 });
      expect(first).toMatchObject({ op: 'ack', seq: 1 });
      const { epoch } = first;

      const bogus = await c.request({ op: 'sub', topic: name, since: 1, epoch: 'bogus' });
      expectNotRecovered(bogus, name, 'epoch_changed');
      expect(Object.hasOwn(bogus.positions, name) && bogus.positions[name]).toEqual({ seq: 2, epoch });
      const beyond = await c.request({ op: 'sub', topic: name, since: 50, epoch });
      expectNotRecovered(beyond, name, 'unknown_position');

      // The same in a wildcard's map, next to the true position.
      const mapped = await c.request({ op: 'sub', topic: '+', since: own(name, 1), epoch: own(name, 'bogus'), life: bogus.life });
      expect(mapped.recovered).toBe(false);
      expect(Object.hasOwn(mapped.missed, name) && mapped.missed[name]).toBe('epoch_changed');

      // A true position is recovered, with the message after it replayed.
      const right = await c.request({ op: 'sub', topic: name, since: 1, epoch });
      expect(right, JSON.stringify(right)).toMatchObject({ op: 'ack', recovered: true });
      expect(Object.hasOwn(right.positions, name) && right.positions[name]).toEqual({ seq: 2, epoch });
      expect(await c.next((f) => f.op === 'msg' && f.topic === name && f.seq === 2)).toMatchObject({ data: 2 });
      await c.request({ op: 'unsub', topic: name });
      await c.request({ op: 'unsub', topic: '+' });
      c.inbox.length = 0;
    }
    pub.close();
  });
});

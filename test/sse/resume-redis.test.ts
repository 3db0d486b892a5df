// A stream resumed on the Redis engine: its re-subscribes are done once Redis has answered them, after the resume
// returned. The first cursor the resumed stream writes must wait for them: one written before they are back holds no
// filters, and a reconnect with it (a browser reconnects with the last id it was given) would lose them all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRedis, startNode, TestRedis, until } from '../cluster/redis.js';
import { TestClient } from '../helpers/client.js';
import { SseClient } from '../helpers/sse-client.js';
import type { TestBroker } from '../helpers/broker.js';
import { decodeCursor } from '../../src/transports/sse/cursor.js';

const run = requireRedis('sse resume on redis');

describe.skipIf(!run)('SSE resume on the Redis engine', () => {
  let redis: TestRedis;
  let node: TestBroker;
  beforeAll(async () => {
    redis = await TestRedis.start();
    node = await startNode(redis, { historySize: 50 });
  });
  afterAll(async () => {
    await node?.close();
    await redis?.stop();
  });

  it('the first cursor of a resumed stream holds its filters: a reconnect right after the resume loses no filter and no message', async () => {
    const pub = await TestClient.connect(node.url);
    const first = await SseClient.open(node.httpUrl, '/sse?topics=plant/%23,valve/1');
    await pub.request({ op: 'pub', topic: 'plant/boiler', data: 1 });
    await first.frame((f) => f.op === 'msg' && f.data === 1);
    const cursor = first.lastEventId;
    first.close();

    const resumed = await SseClient.open(node.httpUrl, '/sse', { 'last-event-id': cursor });
    await until(() => resumed.lastEventId !== '', 'the resumed stream writes its cursor');
    const given = resumed.lastEventId;
    // A reconnect at once, with that cursor (as a browser would after a network blip), misses nothing published since.
    resumed.close();
    await pub.request({ op: 'pub', topic: 'plant/boiler', data: 2 });
    await pub.request({ op: 'pub', topic: 'valve/1', data: 'open' });
    const again = await SseClient.open(node.httpUrl, '/sse', { 'last-event-id': given });
    await pub.request({ op: 'pub', topic: 'plant/boiler', data: 3 });
    // Both topics' messages, in whichever order: one topic's replay has no order with another's live messages (a
    // live 3 may come before valve/1's replayed 'open'). Without them, the diff below says what was lost.
    await until(() => again.all.some((e) => e.frame?.data === 3) && again.all.some((e) => e.frame?.data === 'open'), 'the reconnected stream hears both topics', 10_000).catch(() => undefined);
    const got = (topic: string) => again.all.filter((e) => e.frame?.op === 'msg' && e.frame.topic === topic).map((e) => e.frame!.data);
    expect({ boiler: got('plant/boiler'), valve: got('valve/1') }).toEqual({ boiler: [2, 3], valve: ['open'] });
    expect(again.all.filter((e) => e.event === 'notRecovered')).toEqual([]);
    // The cursor the resumed stream gave holds what the one it resumed from held.
    const held = decodeCursor(given)!;
    expect(held.filters.map((f) => f.filter).sort()).toEqual(['plant/#', 'valve/1']);
    expect(held.positions.get('plant/boiler')?.seq).toBe(1);
    again.close();
    pub.close();
  });
});

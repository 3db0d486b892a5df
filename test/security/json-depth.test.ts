// Inbound JSON nesting: deeper than 64 levels is bad_frame on WebSocket, on TCP JSON lines and on POST /api/publish;
// the sender's connection stays open and a subscriber of the topic is untouched.
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { LineClient } from '../helpers/line-client.js';
import { MAX_JSON_DEPTH, nestsDeeperThan, parseInboundJson } from '../../src/protocol/json.js';

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

const nested = (n: number) => '['.repeat(n) + ']'.repeat(n);
const deepPub = (n: number) => `{"op":"pub","topic":"deep/t","data":${nested(n)}}`;

describe('inbound JSON nesting limit', () => {
  it('6,000 nested arrays: bad_frame on WS, TCP and the API; sender and subscriber carry on', async () => {
    broker = await startTestBroker();
    const sub = await TestClient.connect(broker.url);
    expect(await sub.request({ op: 'sub', topic: 'deep/#' })).toMatchObject({ op: 'ack' });

    const ws = await TestClient.connect(broker.url);
    ws.send(deepPub(6000));
    expect(await ws.next((f) => f.op === 'error')).toMatchObject({ code: 'bad_frame', message: expect.stringMatching(/deeper than 64/) });
    // With an id, the refusal carries it (the frame was parsed before its depth was walked).
    ws.send(`{"op":"pub","id":"deep1","topic":"deep/t","data":${nested(6000)}}`);
    expect(await ws.next((f) => f.op === 'error' && f.id === 'deep1')).toMatchObject({ code: 'bad_frame', message: expect.stringMatching(/deeper than 64/) });
    expect(await ws.request({ op: 'pub', topic: 'deep/t', data: 'after ws' })).toMatchObject({ op: 'ack' });

    const tcp = await LineClient.connect(broker.tcpPort);
    tcp.send(deepPub(6000));
    expect(await tcp.nextJson((f) => f.op === 'error')).toMatchObject({ code: 'bad_frame' });
    tcp.send('{"op":"pub","topic":"deep/t","data":"after tcp","id":"t1"}');
    expect(await tcp.nextJson((f) => f.op === 'ack' || f.op === 'error')).toMatchObject({ op: 'ack', id: 't1', seq: expect.any(Number) });

    const res = await fetch(`${broker.httpUrl}/api/publish`, { method: 'POST', body: `{"topic":"deep/t","data":${nested(6000)}}` });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'bad_frame' });
    const ok = await fetch(`${broker.httpUrl}/api/publish`, { method: 'POST', body: '{"topic":"deep/t","data":"after api"}' });
    expect(ok.status).toBe(200);

    // The subscriber saw exactly the three normal messages, in order, and nothing deep; a ping is the barrier.
    for (const data of ['after ws', 'after tcp', 'after api']) expect(await sub.next((f) => f.op === 'msg')).toMatchObject({ data });
    expect(await sub.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(sub.inbox.filter((f) => f.op === 'msg')).toEqual([]);
    expect(broker.hub.inspect.clientCount()).toBe(3);
    for (const c of [sub, ws]) c.close();
    tcp.close();
  });

  it('64 levels are accepted, 65 are not', async () => {
    broker = await startTestBroker();
    const c = await TestClient.connect(broker.url);
    // The frame object itself is level 1, so data may nest 63 more.
    expect(await c.request({ op: 'pub', topic: 'deep/t', data: JSON.parse(nested(MAX_JSON_DEPTH - 1)) })).toMatchObject({ op: 'ack' });
    c.send(deepPub(MAX_JSON_DEPTH));
    expect(await c.next((f) => f.op === 'error')).toMatchObject({ code: 'bad_frame' });
    c.close();
  });

  it('nestsDeeperThan agrees with the parsed value’s depth (`__proto__` keys included); brackets inside strings are no nesting', () => {
    const depth = (v: unknown): number => (typeof v === 'object' && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0);
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.nat(7), (v, max) => {
        // Walked as inbound JSON is: the value JSON.parse makes of the text.
        const parsed: unknown = JSON.parse(JSON.stringify(v));
        expect(nestsDeeperThan(parsed, max)).toBe(depth(parsed) > max);
      }),
      { numRuns: 500 },
    );
    expect(nestsDeeperThan(JSON.parse(`{"__proto__":${nested(MAX_JSON_DEPTH)}}`), MAX_JSON_DEPTH)).toBe(true);
    const brackets = JSON.stringify({ op: 'ping', id: '[[[{{{'.repeat(40) + '\\"]]]' });
    expect(parseInboundJson(brackets)).toEqual(JSON.parse(brackets));
  });
});

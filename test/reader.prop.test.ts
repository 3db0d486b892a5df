// The reader over a real socket: random text and bytes never crash the broker; each gets an error frame
// (connection stays open) or a defined close code, and a bystander keeps working.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';
import { ERROR_CODES } from '../src/protocol/errors.js';

let broker: TestBroker;
let bystander: TestClient;
beforeAll(async () => {
  broker = await startTestBroker({ maxPayload: 2048 });
  bystander = await TestClient.connect(broker.url);
});
afterAll(async () => {
  bystander.close();
  await broker.close();
});

const DEFINED_CLOSES = new Set([1000, 1002, 1007, 1008, 1009]);

describe('reader fed random input over WebSocket', () => {
  it('answers every text frame with a reply or an error, keeping the connection open', async () => {
    const c = await TestClient.connect(broker.url);
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 300 }), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v))), async (text) => {
        if (/"op"\s*:\s*"quit"/.test(text)) return; // a valid quit would (correctly) close the connection
        c.send(text);
        await c.request({ op: 'ping' }); // ordered barrier: whatever the text produced has arrived
        expect(c.ws.readyState).toBe(WebSocket.OPEN);
      }),
      { numRuns: 150 },
    );
    const replies = c.all.filter((f) => f.op !== 'hello' && f.op !== 'pong');
    expect(replies.every((f) => ['error', 'ack', 'msg', 'event', 'direct'].includes(f.op))).toBe(true);
    c.close();
  });

  it('random raw bytes end in an error frame or a defined close code, never a crash', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 4096 }), fc.boolean(), async (bytes, binary) => {
        const c = await TestClient.connect(broker.url);
        c.ws.send(Buffer.from(bytes), { binary });
        const outcome = await Promise.race([
          c.next((f) => f.op === 'error' || f.op === 'ack' || f.op === 'pong', 2000).then((f) => ({ frame: f })),
          c.closed.then((r) => ({ close: r.code })),
        ]);
        if ('close' in outcome) expect(DEFINED_CLOSES.has(outcome.close)).toBe(true);
        // A frame, not a close: an error names a code of the protocol's (a binary or non-JSON frame is bad_frame).
        else if (outcome.frame.op === 'error') expect(Object.keys(ERROR_CODES)).toContain(outcome.frame.code);
        c.close();
      }),
      { numRuns: 40 },
    );
    expect(await bystander.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    // nothing leaked: only the bystander remains once the fuzz clients are gone
    const start = Date.now();
    while (broker.hub.inspect.clientCount() > 1 && Date.now() - start < 3000) await new Promise((r) => setTimeout(r, 20));
    expect(broker.hub.inspect.clientCount()).toBe(1);
  });
});

// A stream's own frames (a POST's cursor mark, a resume's verdicts) are remembered until their ack is written; under
// --slow-consumer drop-oldest an ack dropped unwritten was remembered for the stream's whole life, so a stream that
// does not read, fed POSTs (an empty body is not even a frame), grew that map without end. Now at most a mailbox's worth.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { SseClient } from '../helpers/sse-client.js';
import { until } from '../helpers/waits.js';
import type { SseWire } from '../../src/transports/sse/wire.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ slowConsumer: 'drop-oldest', mailboxSize: 16 });
});
afterAll(() => broker.close());

describe('an SSE stream that does not read, under drop-oldest', () => {
  it('POSTs to it keep at most a mailbox of its own frames remembered', async () => {
    const sse = await SseClient.open(broker.httpUrl, '/sse?topics=big');
    const link = [...broker.hub.sessions()].find((s) => s.transport === 'sse')!;
    sse.res.socket!.pause();
    sse.res.pause();
    const big = 'x'.repeat(60_000);
    // Fill the socket and the mailbox: from now on its oldest frames are dropped unwritten.
    for (let i = 0; i < 100; i++) await fetch(`${broker.httpUrl}/api/publish`, { method: 'POST', body: JSON.stringify({ topic: 'big', data: big }) });
    await until(() => link.mailbox.depth >= 16, 'a full mailbox');
    for (let i = 0; i < 500; i++) await (await fetch(broker.httpUrl + sse.post, { method: 'POST', body: '', headers: { 'content-type': 'text/plain' } })).text();
    expect((link.wire as SseWire).ownIds.size).toBeLessThanOrEqual(16); // it was 500
    sse.req.destroy();
  });
});

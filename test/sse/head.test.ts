// `HEAD /sse` (a monitor's or curl -I's probe) is answered at once and opens no stream. The router answers HEAD with
// the GET route, so it opened a stream: a connection nobody could read (no body goes out on HEAD, not even the
// headers while the response stays open), the probe hung, and the phantom client held a connection slot, showed in
// `who` and /api/clients and was announced to the webhooks until the socket closed.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.close());

describe('HEAD /sse', () => {
  it('is answered and opens no stream', async () => {
    const req = request(`${broker.httpUrl}/sse?name=probe&topics=a`, { method: 'HEAD', agent: false });
    let got: { status: number; allow: string | undefined } | undefined;
    req.on('response', (res) => {
      res.resume();
      got = { status: res.statusCode ?? 0, allow: res.headers.allow };
    });
    req.end();
    // Answered, or a stream opened for it (the probe then hangs, never answered): whichever comes first.
    await until(() => got !== undefined || broker.hub.sessionCount > 0, 'an answer, or a stream');
    const sessions = broker.hub.sessionCount;
    req.destroy();
    expect({ answer: got, streams: sessions }).toEqual({ answer: { status: 405, allow: 'GET, POST, OPTIONS' }, streams: 0 });
  });
});

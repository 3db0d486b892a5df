// One socket, many pipelined `GET /sse`: each opened a stream (an actor in presence and `who`, a name, subscriptions)
// while the socket held one connection slot, and the streams whose responses were queued behind the first never heard
// the socket close: 199 of 200 outlived it. One stream per socket now; it ends when its socket does.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ maxConnections: 5, maxConnectionsPerIp: 2 });
});
afterAll(() => broker.close());

describe('SSE streams per socket', () => {
  it('200 pipelined GET /sse on one socket open one stream, and none is left once the socket is gone', async () => {
    const before = broker.hub.sessionCount;
    const socket = connect(broker.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.on('data', () => undefined);
    const request = (i: number) => `GET /sse?topics=t&name=ghost-${i} HTTP/1.1\r\nHost: 127.0.0.1:${broker.port}\r\n\r\n`;
    socket.write(Array.from({ length: 200 }, (_, i) => request(i)).join(''));
    await until(() => broker.hub.sessionCount > before, 'the first stream');
    // A request on another socket, answered after the pipelined ones were read and handled (no auth: nothing waits).
    expect((await fetch(`${broker.httpUrl}/healthz`)).status).toBe(200);
    expect(broker.hub.sessionCount - before).toBe(1); // it was 200
    socket.destroy();
    await until(() => broker.hub.sessionCount === before, 'no stream left after the socket closed'); // 199 were left
  });
});

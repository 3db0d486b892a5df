// An SSE stream whose actor crashed (1011) while its client did not read: the stream's end could not flush, and with
// no actor left to cut it the socket stayed open for ever (as on WebSocket and TCP: found by review helpers). The
// wire now bounds it by --close-timeout-ms.
import { afterAll, beforeAll, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { SseClient } from '../helpers/sse-client.js';
import { TestClient } from '../helpers/client.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ closeTimeoutMs: 300, mailboxBytes: 256 * 1024 * 1024, mailboxSize: 1_000_000 });
});
afterAll(() => broker.close());

const openSockets = () => new Promise<number>((r, j) => broker.http.getConnections((err, n) => (err ? j(err) : r(n))));

it('a crashed SSE stream whose client does not read is cut after --close-timeout-ms', async () => {
  const before = await openSockets();
  const sse = await SseClient.open(broker.httpUrl, '/sse?topics=crash/t');
  await until(() => broker.hub.inspect.clients().some((l) => l.transport === 'sse'), 'the stream joined');
  const link = broker.hub.inspect.clients().find((l) => l.transport === 'sse')!;
  sse.res.socket!.pause(); // reads nothing more: what the broker writes backs up
  sse.res.pause();
  const pub = await TestClient.connect(broker.url);
  const data = 'z'.repeat(60_000);
  for (let i = 0; i < 120; i++) await pub.request({ op: 'pub', topic: 'crash/t', data }); // ~7 MB: past what a paused loopback socket absorbs (~4 MB)
  pub.close();
  await until(async () => (await openSockets()) === before + 1, 'only the stream left open');
  link.send = () => {
    throw new Error('injected handler fault'); // as test/security/supervision.test.ts does
  };
  await sse.send({ op: 'ping', id: 1 }).catch(() => undefined); // its answer is sent through link.send: the fault
  await until(() => broker.hub.inspect.findClient(link.id) === undefined, 'the crashed stream reaped');
  await until(async () => (await openSockets()) === before, 'the broker cut the stream\'s socket', 5000);
});

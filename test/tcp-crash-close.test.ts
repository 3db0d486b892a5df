// A TCP connection whose actor crashed (1011) while its peer did not read: the bye line cannot flush, and with no
// actor left to cut it the socket held its slot for ever (the WebSocket side had the same gap; both found by review
// helpers). The wire now bounds the flush by --close-timeout-ms itself.
import { afterAll, beforeAll, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';
import { LineClient } from './helpers/line-client.js';
import { until } from './helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ closeTimeoutMs: 300, mailboxBytes: 256 * 1024 * 1024, mailboxSize: 1_000_000 });
});
afterAll(() => broker.close());

it('a crashed TCP connection whose peer does not read is cut after --close-timeout-ms', async () => {
  const c = await LineClient.connect(broker.tcpPort!);
  await until(() => broker.hub.inspect.clients().some((l) => l.transport === 'tcp'), 'the TCP client joined');
  const link = broker.hub.inspect.clients().find((l) => l.transport === 'tcp')!;
  c.socket.pause(); // reads nothing more: what the broker writes backs up
  const pub = await TestClient.connect(broker.url);
  const data = 'z'.repeat(60_000);
  for (let i = 0; i < 120; i++) await pub.request({ op: 'pub', topic: 'chat', data }); // ~7 MB: past what a paused loopback socket absorbs (~4 MB)
  pub.close();
  link.send = () => {
    throw new Error('injected handler fault'); // as test/security/supervision.test.ts does
  };
  c.socket.write('{"op":"ping"}\n');
  await until(() => broker.hub.inspect.findClient(link.id) === undefined, 'the crashed connection reaped');
  // Cut: the peer's next write meets a reset (it would be taken in for ever if the socket were still open).
  let reset = false;
  c.socket.once('error', () => (reset = true));
  await until(() => {
    if (!c.socket.destroyed) c.socket.write('still there?\n');
    return reset || c.socket.destroyed;
  }, 'the broker cut the socket', 5000);
  c.socket.destroy();
});

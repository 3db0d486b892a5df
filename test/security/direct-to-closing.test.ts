// A direct to a client that has quit (its connection closing, its mailbox sealed: nothing more is ever written to it)
// was acknowledged and dropped (found by a review helper). docs/protocol.md: `send` answers `ack`, or `not_found`.
import { afterEach, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { waitFor } from './upgrade.js';

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

it('a send to a client that quit (closing, not yet reaped) is not_found, not acked and dropped', async () => {
  broker = await startTestBroker({ closeTimeoutMs: 10_000 });
  const victim = await TestClient.connect(`${broker.url}?name=leaver`);
  const sender = await TestClient.connect(broker.url);
  // The leaver quits and does not read its close frame (a slow peer): its connection stays closing for a while.
  victim.ws.pause();
  victim.send({ op: 'quit' });
  await waitFor(() => broker!.hub.inspect.findClient('leaver')?.mailbox.isSealed === true, 3000);
  const answer = await sender.request({ op: 'send', to: 'leaver', data: 'hello?' });
  expect(answer).toMatchObject({ op: 'error', code: 'not_found' });
  victim.ws.resume(); // it reads its close frame now: the broker's close does not wait out the timeout
  await victim.closed;
}, 15_000);

// A direct that fits the victim's quarter for directs, but not its mailbox (filled by the topic it subscribes to),
// closed the victim 4001: "the recipient is never closed because of directs" (docs/security.md, Directs per recipient;
// found by a review helper).
import { afterEach, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

it('a direct that would overflow a stalled victim mailbox is refused to its sender; the victim stays open', async () => {
  const LIMIT = 1024 * 1024;
  broker = await startTestBroker({ mailboxBytes: LIMIT });
  const victim = await TestClient.connect(`${broker.url}/news?name=victim`);
  const publisher = await TestClient.connect(broker.url);
  const flooder = await TestClient.connect(broker.url);
  victim.ws.pause();
  const data = 'd'.repeat(50 * 1024);
  const box = () => broker!.hub.inspect.findClient('victim')!.mailbox;
  const SIZE = 50 * 1024 + 200; // a msg frame of `data`, with its head (a little over)
  let published = 0;
  // Topic messages alone: fill the mailbox as far as they fit, never past its bound.
  for (let i = 0; i < 400 && box().bytes + SIZE <= LIMIT; i++) {
    await publisher.request({ op: 'pub', topic: 'news', data });
    published++;
  }
  expect(box().isSealed).toBe(false);
  expect(box().bytes).toBeGreaterThan(LIMIT - 2 * SIZE);
  // One direct, well within the victim's quarter for directs (256 KiB).
  const answer = await flooder.request({ op: 'send', to: 'victim', data });
  expect(box().isSealed).toBe(false);
  expect(broker.hub.stats.slowConsumerCloses).toBe(0);
  expect(answer).toMatchObject({ op: 'error', code: 'rate_limited' });
  victim.socket.resume();
  expect(await victim.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
  expect(victim.ws.readyState).toBe(WebSocket.OPEN);
  expect(victim.all.filter((f) => f.op === 'msg').length).toBe(published);
}, 30_000);

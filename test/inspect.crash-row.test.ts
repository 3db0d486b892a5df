// A connection actor that crashes (FAULT → throw) leaves the live actors page like any other close: xstate sends no
// snapshot for an actor that threw, so its row stayed for as long as anyone watched (found by a review helper).
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';

type Msg = Record<string, any> & { type: string };
let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.close());

it('a crashed connection is shown closed and then removed from /inspect (row and table entry)', async () => {
  const ws = new WebSocket(broker.url.replace('/ws', '/inspect/ws'));
  const messages: Msg[] = [];
  ws.on('message', (d) => messages.push(JSON.parse(d.toString())));
  await new Promise((r) => ws.once('open', r));
  const client = await TestClient.connect(broker.url);
  const id = client.hello.client.id as string;
  await expect.poll(() => messages.some((m) => m.type === 'rows' && m.rows.some((r: Msg) => r.id === id && r.state === 'online'))).toBe(true);
  ws.send(JSON.stringify({ type: 'select', id }));
  const link = broker.hub.inspect.findClient(id)!;
  (link.actor as any).send({ type: 'FAULT', error: new Error('injected') });
  expect((await client.closed).code).toBe(1011);
  // Like a quit: the row goes (closed, then removed after the linger), and the detail says gone.
  await expect.poll(() => messages.some((m) => m.type === 'rows' && m.removed.includes(id)), { timeout: 5000 }).toBe(true);
  await expect.poll(() => messages.some((m) => m.type === 'detail' && m.id === id && m.gone === true), { timeout: 2000 }).toBe(true);
  expect([...broker.observability.page.table.ids()]).not.toContain(id);
  ws.close();
});

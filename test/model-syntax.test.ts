// The checker's model (src/protocol/model.ts) restates the protocol's syntax, and restated it wrong: it refused
// topics with an empty segment (`a//b`, `/a`, `a/`: valid, docs/protocol.md "Topics") and took names holding bidi
// controls or line separators (refused, docs/protocol.md "Names"). The real broker follows the docs; the model
// expected the opposite, so a checker scenario with either would report a conforming broker as broken.
import { afterEach, expect, it } from 'vitest';
import { ProtocolModel } from '../src/protocol/model.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

it('the model answers pub to an empty-segment topic and a bidi rename as the real broker does', async () => {
  broker = await startTestBroker();
  const c = await TestClient.connect(broker.url);
  const model = new ProtocolModel({ historySize: 10 });
  model.connect(0, { id: c.hello.client.id, addr: c.hello.client.addr, transport: 'ws' });
  const frames = [
    { op: 'pub', id: 1, topic: 'a//b', data: 1 },
    { op: 'pub', id: 2, topic: '/a', data: 2 },
    { op: 'sub', id: 3, topic: 'a/+/b' },
    { op: 'rename', id: 4, name: 'evil\u202egpj.exe' },
    { op: 'rename', id: 5, name: 'two\u2028lines' },
  ] as const;
  const got: string[] = [];
  const want: string[] = [];
  for (const f of frames) {
    const reply = await c.request(f as unknown as Record<string, unknown>);
    got.push(`${f.id}:${reply.op}${reply.code ? `:${reply.code}` : ''}`);
    const expected = model.frame(0, f as never).frames.get(0)!.find((x) => x.op === 'ack' || x.op === 'error')!;
    want.push(`${f.id}:${expected.op}${expected.code ? `:${expected.code}` : ''}`);
  }
  // The broker, per the docs:
  expect(got).toEqual(['1:ack', '2:ack', '3:ack', '4:error:bad_name', '5:error:bad_name']);
  // The model must expect the same.
  expect(want).toEqual(got);
});

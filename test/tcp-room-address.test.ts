// The room shows the addresses of its own TCP line clients only (docs/protocol.md): a TCP client of another room
// publishing to it, or one that left it and keeps publishing there, is shown by its id. Its address was shown to the
// room's members (found by a review helper).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { LineClient } from './helpers/line-client.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({});
});
afterAll(() => broker.close());

describe('addresses in the room', () => {
  it("a TCP client of another room is shown by id, not address; the room's own TCP clients by address", async () => {
    const alice = await LineClient.connect(broker.tcpPort);
    await alice.next(`[${alice.addr}]${alice.addr}: login`);
    const bob = await LineClient.upgrade(broker.port, '?room=lab&name=bob');
    await bob.next(`[${bob.addr}]bob: login`);
    const bobId = broker.hub.inspect.findClient('bob')!.id;
    bob.send(JSON.stringify({ op: 'pub', topic: 'chat', data: 'from lab' }));
    const line = await alice.next((l) => l.includes('from lab'));
    expect(line).toBe(`[${bobId}]bob: from lab`);
    // A member of the room is shown by address, as always.
    const carol = await LineClient.upgrade(broker.port, '?name=carol');
    await alice.next(`[${carol.addr}]carol: login`);
    carol.send('hello');
    expect(await alice.next((l) => l.includes('hello'))).toBe(`[${carol.addr}]carol: hello`);
    // Out of the room (unsubscribed from it), still typing into it: by id.
    carol.send(JSON.stringify({ op: 'unsub', topic: 'chat', id: 'u' }));
    await carol.nextJson((f) => f.id === 'u' && f.op === 'ack');
    carol.send(JSON.stringify({ op: 'pub', topic: 'chat', data: 'from outside' }));
    const carolId = broker.hub.inspect.findClient('carol')!.id;
    expect(await alice.next((l) => l.includes('from outside'))).toBe(`[${carolId}]carol: from outside`);
    for (const c of [alice, bob, carol]) c.close();
  });
});

// Two subscriptions of one client on one filter, over a real broker: the broker keeps one subscription per filter and
// connection, so a second `sub` without presence turned the first one's presence off (found by a review helper).
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchboardClient } from '@switchboard/client';
import { startTestBroker } from '../helpers/broker.js';

const FAST = { minMs: 5, maxMs: 50, factor: 2 };
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
function client(url: string, name?: string): SwitchboardClient {
  const c = new SwitchboardClient({ url, backoff: FAST, requestTimeoutMs: 5000, ...(name && { name }) });
  cleanup.push(() => c.close());
  return c;
}

describe('two subscriptions on one filter', () => {
  it('a second subscription without presence does not turn off the first one\'s presence', { timeout: 20_000 }, async () => {
    const broker = await startTestBroker();
    cleanup.push(() => broker.close());
    const me = client(broker.url, 'me');
    const room = await me.subscribe('room', { presence: true });
    const joins: string[] = [];
    room.on('join', (m) => joins.push(m.name));
    await me.subscribe('room'); // another part of the app reads the same room's messages, no presence
    const guest = client(broker.url, 'guest');
    await guest.subscribe('room');
    // Published after the join: its message comes after the join event on me's connection.
    const got = new Promise((r) => room.once('message', r));
    await guest.publish('room', 'hi');
    await got;
    expect(joins).toEqual(['guest']);
    expect([...room.presence.values()].map((m) => m.name).sort()).toEqual(['guest', 'me']);
  });
});

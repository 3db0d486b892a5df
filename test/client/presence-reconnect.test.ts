// Against a real broker: two presence subscriptions of one filter, then a reconnect: our own new connection is no
// `join` for the second one (found by a review helper).
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchboardClient } from '@switchboard/client';
import { startTestBroker } from '../helpers/broker.js';
import { CuttingProxy, until } from './proxy.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('two presence subscriptions of one filter across a reconnect', () => {
  it('the second one does not tell our own new connection as a join', { timeout: 20_000 }, async () => {
    const broker = await startTestBroker();
    cleanup.push(() => broker.close());
    const proxy = await CuttingProxy.start(broker.port);
    cleanup.push(() => proxy.close());
    const me = new SwitchboardClient({ url: proxy.url, name: 'me', backoff: { minMs: 5, maxMs: 50, factor: 2 } });
    cleanup.push(() => me.close());
    const a = await me.subscribe('room', { presence: true });
    const b = await me.subscribe('room', { presence: true });
    const told: string[] = [];
    for (const s of [a, b]) for (const e of ['join', 'leave'] as const) s.on(e, (m) => told.push(`${s === a ? 'a' : 'b'} ${e}:${m.name}`));
    let syncs = 0;
    b.on('presence', () => syncs++);
    const firstId = me.me!.id;
    proxy.cut();
    await until(() => syncs === 1 && me.me !== undefined && me.me.id !== firstId, 'the re-sync');
    expect([...b.presence.keys()]).toEqual([me.me!.id]);
    expect(told).toEqual([]);
  });
});

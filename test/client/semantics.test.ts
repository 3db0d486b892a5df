// Client semantics a review helper found broken, against a scripted broker (FakeSocket) under fake timers: keyed
// publishes resent after a drop in the order sent; the client's message event once per message when an overlapping
// subscription replays it; a subscription is used once (ended before it was ever subscribed too); off() after once().
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SwitchboardClient } from '@switchboard/client';
import { FakeSocket, onlineClient, resetFakeSockets } from './fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
  resetFakeSockets();
});
afterEach(() => vi.useRealTimers());

const online = onlineClient;
const msg = (topic: string, seq: number, data: unknown = seq, epoch = 'e1') => ({ op: 'msg', topic, seq, epoch, data, ts: 1 });

describe('keyed publishes resent after a drop keep their order', () => {
  it('one that waited in the offline queue is resent before one published after it', async () => {
    const c = await online();
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    const k1 = c.publish('t', 1, { key: 'k1' }); // offline: queued
    FakeSocket.last.open({ id: 'c2' }); // k1 goes out from the queue
    const k2 = c.publish('t', 2, { key: 'k2' }); // online: sent at once, after k1
    expect(FakeSocket.last.sent.filter((f) => f.op === 'pub').map((f) => f.key)).toEqual(['k1', 'k2']);
    FakeSocket.last.drop(1006); // neither was acked: both are resent on the next connection
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open({ id: 'c3' });
    expect(FakeSocket.last.sent.filter((f) => f.op === 'pub').map((f) => f.key)).toEqual(['k1', 'k2']);
    for (const f of FakeSocket.last.sent.filter((f) => f.op === 'pub')) FakeSocket.last.frame({ op: 'ack', id: f.id, seq: f.data, epoch: 'e', delivered: 0 });
    await expect(Promise.all([k1, k2])).resolves.toMatchObject([{ seq: 1 }, { seq: 2 }]);
  });
});

describe("the client's message event", () => {
  it('tells a message once when a second, overlapping subscription gets it again in its replay', async () => {
    const c = await online();
    const told: string[] = [];
    c.on('message', (m) => told.push(`${m.topic}#${m.seq}`));
    const all = c.subscribe('a/#');
    FakeSocket.last.ack('sub');
    await all;
    FakeSocket.last.frame(msg('a/b', 1));
    const one = c.subscribe('a/b', { history: true });
    FakeSocket.last.ack('sub', { recovered: true, positions: { 'a/b': { seq: 1, epoch: 'e1' } } });
    FakeSocket.last.frame(msg('a/b', 1)); // the replay of the new subscription
    FakeSocket.last.frame(msg('a/b', 2));
    await one;
    expect(told).toEqual(['a/b#1', 'a/b#2']);
  });

  it('also when the subscription that took it first was unsubscribed before the replay came', async () => {
    const c = await online();
    const told: string[] = [];
    c.on('message', (m) => told.push(`${m.topic}#${m.seq}`));
    const all = c.subscribe('a/#');
    FakeSocket.last.ack('sub');
    const first = await all;
    FakeSocket.last.frame(msg('a/b', 1));
    FakeSocket.last.frame(msg('a/b', 2));
    FakeSocket.last.frame(msg('a/c', 1));
    const one = c.subscribe('a/b', { history: true });
    FakeSocket.last.ack('sub', { recovered: true, positions: { 'a/b': { seq: 2, epoch: 'e1' } } });
    await one;
    const leaving = first.unsubscribe();
    FakeSocket.last.ack('unsub');
    await leaving;
    FakeSocket.last.frame(msg('a/b', 1)); // the replay of the new subscription, after the first one ended
    FakeSocket.last.frame(msg('a/b', 2));
    FakeSocket.last.frame(msg('a/b', 3));
    expect(told).toEqual(['a/b#1', 'a/b#2', 'a/c#1', 'a/b#3']);
  });

  it('what ended subscriptions took is remembered for 10,000 topics at most: past that the oldest topic\'s replay is told again', async () => {
    const c = await online();
    const told: string[] = [];
    c.on('message', (m) => told.push(`${m.topic}#${m.seq}`));
    const all = c.subscribe('a/#');
    FakeSocket.last.ack('sub');
    const first = await all;
    for (let i = 0; i <= 10_000; i++) FakeSocket.last.frame(msg(`a/${i}`, 1));
    const again = c.subscribe('a/#', { history: true });
    FakeSocket.last.ack('sub', { recovered: true });
    await again;
    const leaving = first.unsubscribe();
    await vi.advanceTimersByTimeAsync(0);
    await leaving;
    told.length = 0;
    FakeSocket.last.frame(msg('a/0', 1)); // the oldest: forgotten
    FakeSocket.last.frame(msg('a/10000', 1)); // the newest: remembered
    FakeSocket.last.frame(msg('a/1', 1)); // the second oldest: remembered
    expect(told).toEqual(['a/0#1']);
  });

  it('a message of a new epoch with a seq the ended subscription took is told (another message)', async () => {
    const c = await online();
    const told: string[] = [];
    c.on('message', (m) => told.push(`${m.topic}#${m.seq}/${m.epoch}`));
    const all = c.subscribe('a/#');
    FakeSocket.last.ack('sub');
    const first = await all;
    FakeSocket.last.frame(msg('a/b', 1));
    const one = c.subscribe('a/b', { history: true });
    FakeSocket.last.ack('sub', { recovered: true, positions: { 'a/b': { seq: 1, epoch: 'e1' } } });
    await one;
    const leaving = first.unsubscribe();
    FakeSocket.last.ack('unsub');
    await leaving;
    FakeSocket.last.frame(msg('a/b', 1, 'x', 'e2'));
    expect(told).toEqual(['a/b#1/e1', 'a/b#1/e2']);
  });
});

describe('a subscription is used once', () => {
  const offline = () => new SwitchboardClient({ url: 'ws://broker/ws', WebSocket: FakeSocket, random: () => 0 });
  it('an iterator made after unsubscribe() of a never-subscribed subscription ends instead of hanging', async () => {
    await online();
    const sub = offline().subscription('a');
    await sub.unsubscribe();
    const next = sub[Symbol.asyncIterator]().next();
    await vi.advanceTimersByTimeAsync(10);
    expect(await Promise.race([next, Promise.resolve('still waiting')])).toEqual({ value: undefined, done: true });
  });
  it("an iterator taken before subscribe() ends at the client's close() instead of waiting for ever", async () => {
    const c = await online();
    const sub = c.subscription('a');
    const next = sub[Symbol.asyncIterator]().next();
    c.close();
    await vi.advanceTimersByTimeAsync(10);
    expect(await Promise.race([next, Promise.resolve('still waiting')])).toEqual({ value: undefined, done: true });
    await expect(sub.subscribe()).rejects.toMatchObject({ code: 'closed' });
    // Made on a closed client: ended at once, its iterator too.
    expect(await c.subscription('b')[Symbol.asyncIterator]().next()).toEqual({ value: undefined, done: true });
  });

  it('subscribe() after unsubscribe() rejects with closed and sends no sub', async () => {
    const c = await online();
    const sub = c.subscription('a');
    await sub.unsubscribe();
    const r = sub.subscribe().then(
      () => 'subscribed',
      (e: { code: string }) => e.code,
    );
    await vi.advanceTimersByTimeAsync(10);
    expect(FakeSocket.last.sent.filter((f) => f.op === 'sub')).toEqual([]);
    expect(await Promise.race([r, Promise.resolve('still waiting')])).toBe('closed');
  });
});

describe('emitter', () => {
  it('off(event, fn) removes a listener added with once(event, fn)', async () => {
    const c = await online();
    const fn = vi.fn();
    c.once('direct', fn);
    c.off('direct', fn);
    FakeSocket.last.frame({ op: 'direct', from: { id: 'c9', name: 'x' }, data: 1 });
    expect(fn).not.toHaveBeenCalled();
  });
});

// Message hand-over from a backlog (a once() or off() listener, one that unsubscribes, a full backlog with messages
// the client had seen), presence events before a subscription's own ack, return() with a next() waiting: each was
// broken (found by a review helper).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeSocket, onlineClient, resetFakeSockets } from './fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
  resetFakeSockets();
});
afterEach(() => vi.useRealTimers());

const online = () => onlineClient();
const msg = (topic: string, seq: number) => ({ op: 'msg', topic, seq, epoch: 'e1', data: seq, ts: 1 });
const member = (id: string, name: string, state = 'active') => ({ id, name, transport: 'ws', state });

describe('a backlog handed over to a listener that goes away', () => {
  it('a once() listener takes one held message; the rest stay held for the next taker', async () => {
    const c = await online();
    const subP = c.subscribe<number>('t');
    FakeSocket.last.ack('sub');
    const sub = await subP;
    for (const s of [1, 2, 3]) FakeSocket.last.frame(msg('t', s));
    expect(sub.buffered).toBe(3);
    const first: number[] = [];
    sub.once('message', (m) => first.push(m.data));
    await vi.advanceTimersByTimeAsync(0);
    expect(first).toEqual([1]);
    const rest: number[] = [];
    sub.on('message', (m) => rest.push(m.data));
    await vi.advanceTimersByTimeAsync(0);
    expect({ buffered: sub.buffered, rest, positions: sub.positions.t?.seq }).toEqual({ buffered: 0, rest: [2, 3], positions: 3 });
  });

  it('a listener that unsubscribes on the first held message gets nothing after it', async () => {
    const c = await online();
    const subP = c.subscribe<number>('t');
    FakeSocket.last.ack('sub');
    const sub = await subP;
    for (const s of [1, 2, 3]) FakeSocket.last.frame(msg('t', s));
    const got: number[] = [];
    sub.on('message', (m) => {
      got.push(m.data);
      void sub.unsubscribe();
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(sub.state).toBe('unsubscribed');
    expect(got).toEqual([1]);
  });
});

describe('presence of a second subscription of one filter', () => {
  it('after a reconnect, our own new join (after the first sub ack) is not told as a join by the second subscription', async () => {
    const c = await online();
    const aP = c.subscribe('room', { presence: true });
    const bP = c.subscribe('room', { presence: true });
    const subs = FakeSocket.last.sent.filter((f) => f.op === 'sub');
    FakeSocket.last.frame({ op: 'ack', id: subs[0]!.id });
    FakeSocket.last.frame({ op: 'event', event: 'join', client: member('c1', 'me'), topic: 'room' });
    FakeSocket.last.frame({ op: 'ack', id: subs[1]!.id });
    const whos = FakeSocket.last.sent.filter((f) => f.op === 'who');
    for (const w of whos) FakeSocket.last.frame({ op: 'ack', id: w.id, clients: [member('c1', 'me'), member('c5', 'ann')] });
    const [, b] = await Promise.all([aP, bP]);
    const told: string[] = [];
    for (const e of ['join', 'leave', 'timeout', 'idle', 'active'] as const) b.on(e, (m) => told.push(`${e}:${m.id}`));

    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open({ id: 'c2', name: 'me' });
    const again = FakeSocket.last.sent.filter((f) => f.op === 'sub');
    expect(again).toHaveLength(2);
    FakeSocket.last.frame({ op: 'ack', id: again[0]!.id, recovered: true });
    // The broker: our own join follows the first ack; the second sub of the filter is answered after it.
    FakeSocket.last.frame({ op: 'event', event: 'join', client: member('c2', 'me'), topic: 'room' });
    FakeSocket.last.frame({ op: 'ack', id: again[1]!.id, recovered: true });
    for (const w of FakeSocket.last.sent.filter((f) => f.op === 'who')) {
      FakeSocket.last.frame({ op: 'ack', id: w.id, clients: [member('c2', 'me'), member('c5', 'ann')] });
    }
    expect([...b.presence.keys()].sort()).toEqual(['c2', 'c5']);
    // docs/client.md: "your own old and new connection pass quietly"
    expect(told).toEqual([]);
  });
});

describe('more hand-over edges', () => {
  it("a full backlog lets go a message the client's listeners had before failing on one nobody saw", async () => {
    const c = await online();
    const subP = c.subscribe<number>('t', { bufferSize: 3 });
    FakeSocket.last.ack('sub');
    const sub = await subP;
    FakeSocket.last.frame(msg('t', 1)); // nobody has seen it: held
    const told: number[] = [];
    c.on('message', (m) => told.push(m.data as number));
    for (const s of [2, 3, 4]) FakeSocket.last.frame(msg('t', s)); // the client's listener had these
    expect(told).toEqual([2, 3, 4]);
    expect(sub.state).toBe('subscribed');
    const got: number[] = [];
    sub.on('message', (m) => got.push(m.data));
    await vi.advanceTimersByTimeAsync(0);
    expect(got).toEqual([1, 3, 4]);
  });

  it('return() settles a next() still waiting (it would hang for ever)', async () => {
    const c = await online();
    const subP = c.subscribe<number>('t');
    FakeSocket.last.ack('sub');
    const sub = await subP;
    const it = sub[Symbol.asyncIterator]();
    const pending = it.next();
    await it.return!();
    const settled = Promise.race([pending.then((r) => r.done), new Promise((r) => setTimeout(() => r('hung'), 100))]);
    await vi.advanceTimersByTimeAsync(100);
    expect(await settled).toBe(true);
  });
});

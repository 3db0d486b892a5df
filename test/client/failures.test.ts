// The client library where a request fails in ways the happy path does not see: a resubscribe the broker answers
// `unavailable`, data JSON cannot encode, an unsubscribe while the `sub` is in flight. Each of these once cost an
// application something (a subscription ended for good, a crashed process, a filter left at the broker).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SwitchboardClient, SwitchboardError } from '@switchboard/client';
import { FakeSocket, onlineClient, resetFakeSockets } from './fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
  resetFakeSockets();
});
afterEach(() => vi.useRealTimers());

const online = () => onlineClient();
const msg = (topic: string, seq: number, epoch = 'e1') => ({ op: 'msg', topic, seq, epoch, data: seq, ts: 1 });
/** Whether a promise has settled, read without awaiting it. */
function watch(p: Promise<unknown>) {
  const s = { settled: false, error: undefined as unknown };
  p.then(
    () => (s.settled = true),
    (err: unknown) => ((s.settled = true), (s.error = err)),
  );
  return s;
}

describe('a resubscribe answered `unavailable` (a cluster node whose Redis is down)', () => {
  it('does not end the subscription: the client reconnects and it resumes from its position', async () => {
    const c = await online();
    const p = c.subscribe('a/b');
    FakeSocket.last.ack('sub', { life: 'L1' });
    const sub = await p;
    FakeSocket.last.frame(msg('a/b', 1));
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open({ id: 'c2', name: 'me' });
    const resub = FakeSocket.last.lastSent('sub');
    expect(resub).toMatchObject({ topic: 'a/b', since: 1, epoch: 'e1' });
    const refusing = FakeSocket.last;
    refusing.frame({ op: 'error', id: resub.id, code: 'unavailable', message: 'the cluster store (Redis) is unreachable; retry later' });
    await vi.advanceTimersByTimeAsync(0);
    expect(sub.state).toBe('subscribing'); // it was ended for good ('failed') before
    // It reconnects (1013, as after any `unavailable`), and the next connection resumes the subscription.
    await vi.advanceTimersByTimeAsync(15_000);
    expect(FakeSocket.last).not.toBe(refusing);
    FakeSocket.last.open({ id: 'c3', name: 'me' });
    expect(FakeSocket.last.lastSent('sub')).toMatchObject({ topic: 'a/b', since: 1, epoch: 'e1' });
    FakeSocket.last.ack('sub', { life: 'L1', recovered: true });
    FakeSocket.last.frame(msg('a/b', 2));
    await vi.advanceTimersByTimeAsync(0);
    expect(sub.state).toBe('subscribed');
    const seen: number[] = [];
    for await (const m of sub) {
      seen.push(m.seq!);
      if (seen.length === 2) break;
    }
    expect(seen).toEqual([1, 2]);
    c.close();
  });
});

describe('data JSON cannot encode (a BigInt, a cycle)', () => {
  it('publish, rpc and send reject with bad_data, never throw, and leave no request to time out behind', async () => {
    const c = await online();
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    let thrown: unknown;
    const results: Promise<unknown>[] = [];
    try {
      results.push(c.publish('a/b', { n: 1n }), c.publish('a/b', cycle, { ack: false }), c.rpc('m', 1n), c.send('bob', cycle));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeUndefined();
    for (const r of results) await expect(r).rejects.toMatchObject({ code: 'bad_data' });
    // Nothing was sent, and nothing is left to fail later (an unhandled rejection would end a Node app).
    expect(FakeSocket.last.sent.filter((f) => f.op !== 'sub')).toEqual([]);
    await vi.advanceTimersByTimeAsync(5000);
    c.close();
  });

  it('a publish made offline with such data is refused at once; the publishes queued with it go out', async () => {
    const client = new SwitchboardClient({ url: 'ws://broker/ws', WebSocket: FakeSocket, random: () => 0, requestTimeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(0);
    const bad = watch(client.publish('a/b', { n: 1n }));
    const good = watch(client.publish('a/b', 'ok'));
    await vi.advanceTimersByTimeAsync(0);
    expect(bad).toMatchObject({ settled: true, error: expect.any(SwitchboardError) });
    expect((bad.error as SwitchboardError).code).toBe('bad_data');
    FakeSocket.last.open({ id: 'c1', name: 'me' });
    const pub = FakeSocket.last.lastSent('pub');
    expect(pub).toMatchObject({ topic: 'a/b', data: 'ok' });
    FakeSocket.last.frame({ op: 'ack', id: pub.id, seq: 1, delivered: 0 });
    await vi.advanceTimersByTimeAsync(0);
    expect(good.settled).toBe(true);
    client.close();
  });

  it('a publish made offline is encoded once: its data is read when it is queued, not again when it is sent', async () => {
    const client = new SwitchboardClient({ url: 'ws://broker/ws', WebSocket: FakeSocket, random: () => 0, requestTimeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(0);
    let reads = 0;
    const data = { toJSON: () => ({ n: ++reads }) };
    const acked = watch(client.publish('a/b', data));
    const fire = watch(client.publish('a/b', data, { ack: false }));
    await vi.advanceTimersByTimeAsync(0);
    expect(reads).toBe(2);
    FakeSocket.last.open({ id: 'c1', name: 'me' });
    const sent = FakeSocket.last.sent.filter((f) => f.op === 'pub');
    // What was queued, as it was when queued; the acked one carries its request id.
    expect(sent).toEqual([
      { op: 'pub', topic: 'a/b', data: { n: 1 }, id: expect.any(Number) },
      { op: 'pub', topic: 'a/b', data: { n: 2 } },
    ]);
    expect(reads).toBe(2);
    FakeSocket.last.frame({ op: 'ack', id: sent[0]!.id, seq: 1, delivered: 0 });
    await vi.advanceTimersByTimeAsync(0);
    expect(acked).toMatchObject({ settled: true, error: undefined });
    expect(fire.settled).toBe(true);
    client.close();
  });
});

describe('unsubscribe() while the sub is in flight', () => {
  it('sends the unsub after it: the broker, serving one connection in order, does not keep the filter (and its presence)', async () => {
    const c = await online();
    const sub = c.subscription('room/1', { presence: true });
    void sub.subscribe().catch(() => {});
    const sent = FakeSocket.last.lastSent('sub');
    const done = sub.unsubscribe();
    expect(FakeSocket.last.lastSent('unsub')).toMatchObject({ topic: 'room/1' });
    FakeSocket.last.frame({ op: 'ack', id: sent.id, life: 'L1' }); // the sub's late ack changes nothing
    FakeSocket.last.ack('unsub');
    await done;
    expect(sub.state).not.toBe('subscribed');
    c.close();
  });
});

describe('what the app is told it has', () => {
  it('sub.positions says what was handed to the app, not what is still buffered: a run that saves it and stops skips nothing', async () => {
    const c = await online();
    const subP = c.subscribe<number>('a/b', { positions: { 'a/b': { seq: 1, epoch: 'e1' } } });
    FakeSocket.last.ack('sub', { recovered: true, positions: { 'a/b': { seq: 4, epoch: 'e1' } }, life: 'L' });
    for (const s of [2, 3, 4]) FakeSocket.last.frame(msg('a/b', s)); // the replay
    const sub = await subP;
    const it = sub[Symbol.asyncIterator]();
    expect((await it.next()).value.seq).toBe(2);
    // docs/client.md saves positions inside its `for await`: after handling 2 it must say 2 (it said 4).
    expect(sub.positions['a/b']).toEqual({ seq: 2, epoch: 'e1' });
    expect((await it.next()).value.seq).toBe(3);
    expect(sub.positions['a/b']).toEqual({ seq: 3, epoch: 'e1' });
    c.close();
  });

  it('a rename between who pages keeps the state the later page reports (an event carries none: it read as active)', async () => {
    const c = await online();
    const member = (id: string, name: string, state = 'active') => ({ id, name, transport: 'ws', state });
    const subP = c.subscribe('room', { presence: true });
    FakeSocket.last.ack('sub');
    FakeSocket.last.ack('who', { clients: [member('c1', 'me')], next: 'p2' });
    FakeSocket.last.frame({ op: 'event', event: 'rename', client: { id: 'c6', name: 'bobby', transport: 'ws' }, old: 'bob', topic: 'room' });
    FakeSocket.last.ack('who', { clients: [member('c6', 'bobby', 'idle')] });
    const sub = await subP;
    expect(sub.presence.get('c6')).toMatchObject({ name: 'bobby', state: 'idle' });
    c.close();
  });
});

// The client against a scripted broker (FakeSocket) under fake timers: request matching and timeouts, the
// offline queue, dedupe and order across a resume, the recovery verdict, presence re-sync, iteration.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SwitchboardError, type Member } from '@switchboard/client';
import { FakeSocket, onlineClient, resetFakeSockets } from './fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
  resetFakeSockets();
});
afterEach(() => vi.useRealTimers());

const online = onlineClient;

const msg = (topic: string, seq: number, data: unknown = seq, epoch: string | null = 'e1') => ({ op: 'msg', topic, seq, ...(epoch !== null && { epoch }), data, ts: 1 });

/** Drops the connection and brings a new one up (backoff is 0 with random 0). */
async function reconnect(id = 'c2', code = 1006) {
  FakeSocket.last.drop(code);
  await vi.advanceTimersByTimeAsync(0);
  FakeSocket.last.open({ id, name: 'me' });
}

describe('requests', () => {
  it('replies are matched by id, whatever their order', async () => {
    const c = await online();
    const ws = FakeSocket.last;
    const p1 = c.publish('a', 1);
    const p2 = c.publish('a', 2);
    const [f1, f2] = ws.sent.filter((f) => f.op === 'pub');
    expect(f1!.id).not.toBe(f2!.id);
    ws.frame({ op: 'ack', id: f2!.id, seq: 2, epoch: 'e', delivered: 0 });
    ws.frame({ op: 'ack', id: f1!.id, seq: 1, epoch: 'e', delivered: 3 });
    await expect(p1).resolves.toEqual({ seq: 1, epoch: 'e', delivered: 3 });
    await expect(p2).resolves.toEqual({ seq: 2, epoch: 'e', delivered: 0 });
  });

  it('an error frame rejects its request with a typed SwitchboardError', async () => {
    const c = await online();
    const p = c.rename('x y ');
    FakeSocket.last.frame({ op: 'error', id: FakeSocket.last.lastSent('rename').id, code: 'bad_name', message: 'name has leading or trailing spaces' });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ code: 'bad_name', message: 'name has leading or trailing spaces' });
  });

  it('no reply within requestTimeoutMs: timeout; a late reply is ignored', async () => {
    const c = await online();
    const p = c.ping().catch((e: SwitchboardError) => e);
    await vi.advanceTimersByTimeAsync(999);
    FakeSocket.last.frame({ op: 'pong', id: 999 }); // someone else's id
    await vi.advanceTimersByTimeAsync(1);
    expect(await p).toMatchObject({ code: 'timeout' });
    FakeSocket.last.frame({ op: 'pong', id: FakeSocket.last.lastSent('ping').id });
  });

  it('a drop rejects the requests in flight with `disconnected`; requests while offline fail at once', async () => {
    const c = await online();
    const who = c.who().catch((e: SwitchboardError) => e.code);
    const send = c.send('bob', 'hi').catch((e: SwitchboardError) => e.code);
    FakeSocket.last.drop(1006);
    expect(await who).toBe('disconnected');
    expect(await send).toBe('disconnected');
    await expect(c.ping()).rejects.toMatchObject({ code: 'disconnected' });
  });

  it('fire-and-forget publish sends no id and waits for nothing', async () => {
    const c = await online();
    await c.publish('a/b', { x: 1 }, { ack: false, echo: false });
    expect(FakeSocket.last.lastSent('pub')).toEqual({ op: 'pub', topic: 'a/b', data: { x: 1 }, echo: false });
  });

  it('who follows next cursors in whoAll', async () => {
    const c = await online();
    const all = c.whoAll('room');
    FakeSocket.last.ack('who', { clients: [{ id: 'c1', name: 'a', transport: 'ws' }], next: 'k1' });
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.last.lastSent('who')).toMatchObject({ topic: 'room', cursor: 'k1' });
    FakeSocket.last.ack('who', { clients: [{ id: 'c2', name: 'b', transport: 'tcp', state: 'idle' }] });
    expect(await all).toEqual([
      { id: 'c1', name: 'a', transport: 'ws', state: 'active' },
      { id: 'c2', name: 'b', transport: 'tcp', state: 'idle' },
    ]);
  });
});

describe('offline queue', () => {
  it('publishes made while reconnecting go out after the resubscribes; beyond the bound they fail with queue_full', async () => {
    const c = await online({ offlineQueueSize: 2 });
    const sub = c.subscribe('a');
    FakeSocket.last.ack('sub');
    await sub;
    FakeSocket.last.drop(1001);
    const p1 = c.publish('a', 1);
    const p2 = c.publish('a', 2, { ack: false });
    await expect(c.publish('a', 3)).rejects.toMatchObject({ code: 'queue_full' });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open({ id: 'c2' });
    const ops = FakeSocket.last.sent.map((f) => `${f.op}:${f.data ?? f.topic}`);
    expect(ops).toEqual(['sub:a', 'pub:1', 'pub:2']);
    FakeSocket.last.frame({ op: 'ack', id: FakeSocket.last.sent.find((f) => f.op === 'pub' && f.id !== undefined)!.id, seq: 9, delivered: 1 });
    expect(await p1).toEqual({ seq: 9, delivered: 1 });
    await expect(p2).resolves.toBeUndefined();
  });

  it('close() rejects what is still queued with `closed`', async () => {
    const c = await online();
    FakeSocket.last.drop(1006);
    const p = c.publish('a', 1);
    c.close();
    await expect(p).rejects.toMatchObject({ code: 'closed' });
    expect(c.state).toBe('closed');
  });
});

describe('subscriptions across reconnects', () => {
  it('resume sends the position, drops duplicates and delivers the missed messages once, in order', async () => {
    const c = await online();
    const subP = c.subscribe<number>('room');
    FakeSocket.last.ack('sub');
    const sub = await subP;
    const seen: number[] = [];
    sub.on('message', (m) => seen.push(m.data));
    for (const s of [1, 2, 3]) FakeSocket.last.frame(msg('room', s));
    const recovered = vi.fn();
    sub.on('recovered', recovered);
    await reconnect();
    expect(FakeSocket.last.lastSent('sub')).toMatchObject({ topic: 'room', since: 3, epoch: 'e1' });
    expect(sub.state).toBe('subscribing');
    // A live message of the topic before our ack (via another filter) does not count: the replay brings it.
    FakeSocket.last.frame(msg('room', 5));
    FakeSocket.last.ack('sub', { recovered: true, positions: { room: { seq: 5, epoch: 'e1' } } });
    expect(sub.state).toBe('subscribed');
    for (const s of [3, 4, 5, 5, 6]) FakeSocket.last.frame(msg('room', s));
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    expect(recovered).toHaveBeenCalledOnce();
  });

  it('wildcards resume with maps of positions', async () => {
    const c = await online();
    const subP = c.subscribe('a/+');
    FakeSocket.last.ack('sub');
    await subP;
    FakeSocket.last.frame(msg('a/b', 5, 0, 'k1'));
    FakeSocket.last.frame(msg('a/c', 2, 0, 'k7'));
    await reconnect();
    expect(FakeSocket.last.lastSent('sub')).toMatchObject({ topic: 'a/+', since: { 'a/b': 5, 'a/c': 2 }, epoch: { 'a/b': 'k1', 'a/c': 'k7' } });
  });

  it('recovered:false emits notRecovered with the reason and positions, and the new numbering is taken', async () => {
    const c = await online();
    const subP = c.subscribe<number>('a/+');
    FakeSocket.last.ack('sub');
    const sub = await subP;
    const seen: string[] = [];
    sub.on('message', (m) => seen.push(`${m.topic}#${m.seq}`));
    FakeSocket.last.frame(msg('a/b', 7, 0, 'old'));
    FakeSocket.last.frame(msg('a/c', 2, 0, 'k7'));
    const verdicts: unknown[] = [];
    sub.on('notRecovered', (v) => verdicts.push(v));
    await reconnect();
    FakeSocket.last.ack('sub', {
      recovered: false,
      reason: 'epoch_changed',
      missed: { 'a/b': 'epoch_changed' },
      positions: { 'a/b': { seq: 3, epoch: 'new' }, 'a/c': { seq: 3, epoch: 'k7' } },
    });
    FakeSocket.last.frame(msg('a/c', 3, 0, 'k7')); // replayed
    FakeSocket.last.frame(msg('a/b', 4, 0, 'new')); // live, new epoch, seq below the old position
    expect(verdicts).toEqual([
      { recovered: false, reason: 'epoch_changed', missed: { 'a/b': 'epoch_changed' }, positions: { 'a/b': { seq: 3, epoch: 'new' }, 'a/c': { seq: 3, epoch: 'k7' } } },
    ]);
    expect(seen).toEqual(['a/b#7', 'a/c#2', 'a/c#3', 'a/b#4']);
  });

  it('a position without an epoch (protocol-1 broker) cannot be checked: notRecovered even when the ack says recovered', async () => {
    const c = await online();
    const subP = c.subscribe<number>('room');
    FakeSocket.last.ack('sub');
    const sub = await subP;
    const seen: number[] = [];
    sub.on('message', (m) => seen.push(m.seq));
    for (const s of [1, 2, 3]) FakeSocket.last.frame(msg('room', s, s, null));
    const notRecovered = vi.fn();
    sub.on('notRecovered', notRecovered);
    await reconnect();
    expect(FakeSocket.last.lastSent('sub')).toEqual({ op: 'sub', id: expect.anything(), topic: 'room', since: 3 });
    FakeSocket.last.ack('sub', { recovered: true }); // a restarted protocol-1 broker cannot know
    FakeSocket.last.frame(msg('room', 1, 1, null)); // numbering restarted
    expect(notRecovered).toHaveBeenCalledWith(expect.objectContaining({ recovered: false, reason: 'unknown_position', missed: { room: 'unknown_position' } }));
    expect(seen).toEqual([1, 2, 3, 1]);
  });

  it('a wildcard resumed on a protocol-1 broker asks for all it holds (since 0): every topic it had is unknown_position, and none comes twice', async () => {
    const c = await online();
    const subP = c.subscribe<number>('a/#');
    FakeSocket.last.ack('sub');
    const sub = await subP;
    const seen: string[] = [];
    sub.on('message', (m) => seen.push(`${m.topic}#${m.seq}`));
    FakeSocket.last.frame(msg('a/b', 1, 1, null));
    FakeSocket.last.frame(msg('a/c', 1, 1, null));
    const verdicts: unknown[] = [];
    sub.on('notRecovered', (v) => verdicts.push(v));
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open({ id: 'c2', name: 'me' }, 1);
    expect(FakeSocket.last.lastSent('sub')).toEqual({ op: 'sub', id: expect.anything(), topic: 'a/#', since: 0 });
    FakeSocket.last.ack('sub', { recovered: true });
    for (const [topic, seq] of [['a/b', 1], ['a/c', 1], ['a/b', 2]] as const) FakeSocket.last.frame(msg(topic, seq, seq, null));
    expect(verdicts).toEqual([{ recovered: false, reason: 'unknown_position', missed: { 'a/b': 'unknown_position', 'a/c': 'unknown_position' }, positions: {} }]);
    expect(seen).toEqual(['a/b#1', 'a/c#1', 'a/b#2']);
  });

  it('a refused subscribe rejects with the broker error; unsubscribe ends iteration', async () => {
    const c = await online();
    const bad = c.subscribe('secret/#');
    FakeSocket.last.frame({ op: 'error', id: FakeSocket.last.lastSent('sub').id, code: 'forbidden', message: 'no' });
    await expect(bad).rejects.toMatchObject({ code: 'forbidden' });

    const subP = c.subscribe<number>('n');
    FakeSocket.last.ack('sub');
    const sub = await subP;
    const got: number[] = [];
    const loop = (async () => {
      for await (const m of sub) got.push(m.data);
    })();
    FakeSocket.last.frame(msg('n', 1));
    FakeSocket.last.frame(msg('n', 2));
    await vi.advanceTimersByTimeAsync(0);
    const unsub = sub.unsubscribe();
    FakeSocket.last.ack('unsub');
    await unsub;
    await loop;
    expect(got).toEqual([1, 2]);
    expect(sub.state).toBe('unsubscribed');
  });

  it('an iterator that falls behind its bound fails with buffer_overflow instead of growing', async () => {
    const c = await online();
    const subP = c.subscribe<number>('n', { bufferSize: 3 });
    FakeSocket.last.ack('sub');
    const sub = await subP;
    const it = sub[Symbol.asyncIterator]();
    for (const s of [1, 2, 3, 4]) FakeSocket.last.frame(msg('n', s));
    expect((await it.next()).value?.data).toBe(1);
    await it.next();
    await it.next();
    await expect(it.next()).rejects.toMatchObject({ code: 'buffer_overflow' });
  });
});

describe('the backlog: what a subscription accepted waits for its first taker', () => {
  it('messages accepted before any listener go, in order, to the listeners added in the same turn; later ones follow them', async () => {
    const c = await online();
    const subP = c.subscribe<number>('room', { history: true });
    FakeSocket.last.ack('sub', { recovered: true, positions: { room: { seq: 2, epoch: 'e1' } } });
    FakeSocket.last.frame(msg('room', 1));
    FakeSocket.last.frame(msg('room', 2));
    const sub = await subP;
    expect(sub.buffered).toBe(2);
    const a: number[] = [];
    const b: number[] = [];
    sub.on('message', (m) => a.push(m.seq));
    FakeSocket.last.frame(msg('room', 3)); // arrives before the hand-over: queued behind 1 and 2
    sub.on('message', (m) => b.push(m.seq));
    expect(a).toEqual([]); // handed over on a microtask, not inside on()
    await Promise.resolve();
    FakeSocket.last.frame(msg('room', 4));
    expect(a).toEqual([1, 2, 3, 4]);
    expect(b).toEqual([1, 2, 3, 4]);
  });

  it("the client's message event tells each message once as it arrives, however many subscriptions take it", async () => {
    const c = await online();
    const told: string[] = [];
    c.on('message', (m) => told.push(`${m.topic}#${m.seq}`));
    const one = c.subscribe('a/b');
    FakeSocket.last.ack('sub');
    const all = c.subscribe('a/+');
    FakeSocket.last.ack('sub');
    const [s1, s2] = await Promise.all([one, all]);
    FakeSocket.last.frame(msg('a/b', 1));
    FakeSocket.last.frame(msg('a/c', 1));
    FakeSocket.last.frame(msg('a/b', 1)); // a duplicate: nobody hears it again
    expect(told).toEqual(['a/b#1', 'a/c#1']);
    // Each subscription held what it accepted for its own first listener, which came after.
    const late: string[] = [];
    s1.on('message', (m) => late.push(`one ${m.topic}#${m.seq}`));
    s2.on('message', (m) => late.push(`all ${m.topic}#${m.seq}`));
    await Promise.resolve();
    expect(late).toEqual(['one a/b#1', 'all a/b#1', 'all a/c#1']);
  });

  it('listeners attached to client.subscription() before subscribe() hear the verdict and the replay', async () => {
    const c = await online();
    const sub = c.subscription<number>('room', { positions: { room: { seq: 1, epoch: 'e1' } } });
    expect(sub.state).toBe('unsubscribed');
    expect(FakeSocket.last.sent.filter((f) => f.op === 'sub')).toEqual([]); // nothing sent before subscribe()
    const heard: string[] = [];
    sub.on('recovered', (v) => heard.push(`recovered ${JSON.stringify(v.positions)}`));
    sub.on('message', (m) => heard.push(`msg ${m.seq}`));
    const subscribed = sub.subscribe();
    expect(sub.subscribe()).toBe(subscribed);
    expect(FakeSocket.last.lastSent('sub')).toMatchObject({ topic: 'room', since: 1, epoch: 'e1' });
    FakeSocket.last.ack('sub', { recovered: true, positions: { room: { seq: 2, epoch: 'e1' } } });
    FakeSocket.last.frame(msg('room', 2));
    await subscribed;
    expect(heard).toEqual(['recovered {"room":{"seq":2,"epoch":"e1"}}', 'msg 2']);
  });

  it('verdict keys are topics, never properties: __proto__ and constructor in missed and positions', async () => {
    const c = await online();
    const subP = c.subscribe('+', { positions: JSON.parse('{"__proto__":{"seq":4,"epoch":"e1"},"constructor":{"seq":1,"epoch":"e1"}}') });
    const sent = FakeSocket.last.lastSent('sub');
    expect(Object.keys(sent.since)).toEqual(['__proto__', 'constructor']); // the resume carries both as data
    // The broker could not vouch for __proto__; constructor was recovered.
    FakeSocket.last.frame(JSON.parse(`{"op":"ack","id":${sent.id},"recovered":false,"reason":"epoch_changed","missed":{"__proto__":"epoch_changed"},"positions":{"__proto__":{"seq":9,"epoch":"e2"},"constructor":{"seq":1,"epoch":"e1"}}}`));
    const sub = await subP;
    const v = sub.recovery!;
    expect(v.recovered).toBe(false);
    expect(Object.keys(v.missed)).toEqual(['__proto__']);
    expect(Object.keys(v.positions)).toEqual(['__proto__', 'constructor']);
    expect(v.positions['__proto__']).toEqual({ seq: 9, epoch: 'e2' });
    // The subscription moved to the broker's new numbering for __proto__, and still knows constructor's.
    expect(JSON.stringify(sub.positions)).toBe('{"__proto__":{"seq":9,"epoch":"e2"},"constructor":{"seq":1,"epoch":"e1"}}');
    // A verdict that misses nothing but a `constructor` the broker does not hold is not recovered either.
    await reconnect();
    const again = FakeSocket.last.lastSent('sub');
    FakeSocket.last.frame({ op: 'ack', id: again.id, recovered: true, positions: {} });
    expect(sub.recovery).toMatchObject({ recovered: true });
    const wrong = c.subscribe('toString', { positions: { toString: { seq: 3 } } });
    FakeSocket.last.ack('sub', { recovered: true }); // a protocol-1 broker: a position without epoch is unchecked
    expect((await wrong).recovery).toMatchObject({ recovered: false, missed: { toString: 'unknown_position' } });
  });

  it('bad subscribe options are bad_option errors, thrown by subscription() and rejected by subscribe()', async () => {
    const c = await online();
    expect(() => c.subscription('')).toThrow(SwitchboardError);
    expect(() => c.subscription('a', { bufferSize: 0 })).toThrow(/bufferSize/);
    expect(() => c.subscription('a', { positions: { a: { seq: -1 } } })).toThrow(/positions\['a'\]/);
    await expect(c.subscribe('a', { history: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'bad_option' });
  });

  it('unsubscribe() before the ack rejects subscribe() with closed; a subscription is used once', async () => {
    const c = await online();
    const sub = c.subscription('a');
    const p = sub.subscribe();
    const done = sub.unsubscribe();
    FakeSocket.last.ack('unsub'); // sent after the sub, which the broker may already hold (test/client/failures.test.ts)
    await done;
    await expect(p).rejects.toMatchObject({ code: 'closed' });
    expect(sub.state).toBe('unsubscribed');
    await expect(sub.subscribe()).rejects.toMatchObject({ code: 'closed' });
  });
});

describe('presence', () => {
  const member = (id: string, name: string, state = 'active') => ({ id, name, transport: 'ws', state });

  it('built from who (paginated) and events; a reconnect re-syncs with only the real differences', async () => {
    const c = await online();
    const subP = c.subscribe('room', { presence: true });
    FakeSocket.last.ack('sub');
    // Our own join follows the ack, before the who reply: the snapshot already has it.
    FakeSocket.last.frame({ op: 'event', event: 'join', client: member('c1', 'me'), topic: 'room' });
    FakeSocket.last.ack('who', { clients: [member('c1', 'me'), member('c5', 'ann')], next: 'p2' });
    FakeSocket.last.ack('who', { clients: [member('c6', 'bob'), member('c7', 'cy')] });
    const sub = await subP;
    const names = () => [...sub.presence.values()].map((m) => m.name).sort();
    expect(names()).toEqual(['ann', 'bob', 'cy', 'me']);

    const events: string[] = [];
    for (const e of ['join', 'leave', 'timeout', 'idle', 'active'] as const) sub.on(e, (m: Member) => events.push(`${e}:${m.name}`));
    sub.on('rename', ({ member: m, old }) => events.push(`rename:${old}->${m.name}`));
    FakeSocket.last.frame({ op: 'event', event: 'join', client: member('c8', 'dee'), topic: 'room' });
    FakeSocket.last.frame({ op: 'event', event: 'idle', client: member('c5', 'ann'), topic: 'room' });
    expect(events).toEqual(['join:dee', 'idle:ann']);
    events.length = 0;

    // Offline: bob left, cy renamed, ann active again, eve came; dee unchanged. We are c2 now (c1 is our old self).
    await reconnect('c2');
    FakeSocket.last.ack('sub');
    FakeSocket.last.frame({ op: 'event', event: 'join', client: member('c2', 'me'), topic: 'room' });
    FakeSocket.last.ack('who', {
      clients: [member('c2', 'me'), member('c5', 'ann'), member('c7', 'cyrus'), member('c8', 'dee'), member('c9', 'eve')],
    });
    expect(events.sort()).toEqual(['active:ann', 'join:eve', 'leave:bob', 'rename:cy->cyrus']);
    expect(names()).toEqual(['ann', 'cyrus', 'dee', 'eve', 'me']);
  });

  it('events after the first who page apply on top of the snapshot (a leave is not undone by a later page)', async () => {
    const c = await online();
    const subP = c.subscribe('room', { presence: true });
    FakeSocket.last.ack('sub');
    FakeSocket.last.ack('who', { clients: [member('c1', 'me')], next: 'p2' });
    FakeSocket.last.frame({ op: 'event', event: 'leave', client: member('c6', 'bob'), topic: 'room' });
    FakeSocket.last.frame({ op: 'event', event: 'join', client: member('c9', 'new'), topic: 'room' });
    FakeSocket.last.ack('who', { clients: [member('c6', 'bob')] });
    const sub = await subP;
    expect([...sub.presence.keys()].sort()).toEqual(['c1', 'c9']);
  });
});

describe('connection', () => {
  it('passes token and the current name in the URL; a rename is kept for the next connect', async () => {
    const c = await online({ token: 'tok', name: 'ann' });
    expect(new URL(FakeSocket.last.url).searchParams.get('token')).toBe('tok');
    expect(new URL(FakeSocket.last.url).searchParams.get('name')).toBe('ann');
    const r = c.rename('anna');
    FakeSocket.last.ack('rename', { name: 'anna' });
    await r;
    await reconnect();
    expect(new URL(FakeSocket.last.url).searchParams.get('name')).toBe('anna');
  });

  it('an `unavailable` error reconnects; close() sends quit', async () => {
    const c = await online();
    const first = FakeSocket.last;
    first.frame({ op: 'error', code: 'unavailable', message: 'node lost redis' });
    expect(c.state).toBe('reconnecting');
    expect(first.closedByClient).toBe(1000);
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open({ id: 'c2' });
    expect(c.state).toBe('connected');
    c.close();
    expect(FakeSocket.last.sent.at(-1)).toEqual({ op: 'quit' });
  });

  it('close 1008 stops: the client is closed and says why', async () => {
    const c = await online();
    const closed = vi.fn();
    c.on('closed', closed);
    FakeSocket.last.drop(1008, 'rate limit exceeded');
    expect(c.state).toBe('closed');
    expect(closed).toHaveBeenCalledWith({ code: 1008, reason: 'rate limit exceeded', status: undefined });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.all).toHaveLength(1);
  });
});

// What the client does when a node cannot serve it or takes something back (found by a review helper): after an
// `unavailable` or a connect timeout it dials the next URL, with a backoff that grows while the node keeps answering
// `unavailable`; close() fails what is pending with `closed`; a subscription the broker removed at a token refresh
// fails; a subscribe() made in a `connected` listener is sent once.
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SwitchboardClient, type EventSourceConstructor, type SwitchboardError } from '@switchboard/client';
import { FakeSocket, resetFakeSockets } from './fake-socket.js';
import { ScriptedBroker } from './scripted-broker.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { until } from '../helpers/waits.js';

const host = (s: FakeSocket) => new URL(s.url).host;
const UNAVAILABLE = { op: 'error', code: 'unavailable', message: 'the cluster store (Redis) is unreachable; retry later' };

describe('a node that cannot serve (fake sockets and timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    resetFakeSockets();
  });
  afterEach(() => vi.useRealTimers());

  it('an `unavailable` on node A: the next dial goes to node B', async () => {
    const c = new SwitchboardClient({ url: ['ws://a/ws', 'ws://b/ws'], WebSocket: FakeSocket, random: () => 0 });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open({ id: 'c1' });
    FakeSocket.last.frame(UNAVAILABLE);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeSocket.all.map(host)).toEqual(['a', 'b']);
    c.close();
  });

  it('a connect timeout on node A: the next dial goes to node B', async () => {
    const c = new SwitchboardClient({ url: ['ws://a/ws', 'ws://b/ws'], WebSocket: FakeSocket, random: () => 0, connectTimeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(2000);
    expect(FakeSocket.all.map(host)).toEqual(['a', 'b']);
    c.close();
  });

  it('a WebSocket upgrade that gets no answer (a proxy holding it) until the connect timeout: the next dial is SSE', async () => {
    const streams: string[] = [];
    class HangingEventSource {
      readyState = 0;
      onmessage = null;
      onerror = null;
      constructor(url: string) {
        streams.push(url);
      }
      close(): void {}
      addEventListener(): void {}
    }
    const c = new SwitchboardClient({ url: 'ws://a/ws', WebSocket: FakeSocket, EventSource: HangingEventSource as unknown as EventSourceConstructor, random: () => 0, connectTimeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(2000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(streams).toEqual(['http://a/sse']);
    c.close();
  });

  it('a node that says hello and then `unavailable`, again and again, is redialled with a growing backoff', async () => {
    const c = new SwitchboardClient({ url: 'ws://a/ws', WebSocket: FakeSocket, random: () => 0.999, backoff: { minMs: 50, maxMs: 10_000 } });
    const waits: number[] = [];
    c.on('reconnecting', ({ inMs }) => waits.push(inMs));
    await vi.advanceTimersByTimeAsync(0);
    for (let round = 0; round < 5; round++) {
      const socket = FakeSocket.last;
      socket.open({ id: `c${round}` });
      socket.frame(UNAVAILABLE);
      await vi.advanceTimersByTimeAsync(0);
      await vi.advanceTimersByTimeAsync(waits.at(-1)! + 1);
      expect(FakeSocket.last).not.toBe(socket);
    }
    expect(waits).toHaveLength(5);
    for (let i = 1; i < waits.length; i++) expect(waits[i]!).toBeGreaterThan(waits[i - 1]!);
    c.close();
  });

  it('a plain drop after a hello still reconnects at the first step of the backoff', async () => {
    const c = new SwitchboardClient({ url: 'ws://a/ws', WebSocket: FakeSocket, random: () => 0.999, backoff: { minMs: 50, maxMs: 10_000 } });
    const waits: number[] = [];
    c.on('reconnecting', ({ inMs }) => waits.push(inMs));
    await vi.advanceTimersByTimeAsync(0);
    for (let round = 0; round < 3; round++) {
      FakeSocket.last.open({ id: `c${round}` });
      FakeSocket.last.drop(1006);
      await vi.advanceTimersByTimeAsync(0);
      await vi.advanceTimersByTimeAsync(waits.at(-1)! + 1);
    }
    expect(new Set(waits).size).toBe(1);
    c.close();
  });

  it('close(): pending requests, a keyed publish too, fail with `closed`', async () => {
    const c = new SwitchboardClient({ url: 'ws://a/ws', WebSocket: FakeSocket, random: () => 0 });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open({ id: 'c1' });
    const ping = c.ping().catch((e: SwitchboardError) => e.code);
    const keyed = c.publish('t', 1, { key: 'k1' }).catch((e: SwitchboardError) => e.code);
    c.close();
    expect([await ping, await keyed]).toEqual(['closed', 'closed']);
  });

  it('subscribe() in a `connected` listener sends one sub', async () => {
    const c = new SwitchboardClient({ url: 'ws://a/ws', WebSocket: FakeSocket, random: () => 0 });
    c.once('connected', () => void c.subscribe('x/y').catch(() => undefined));
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open({ id: 'c1' });
    expect(FakeSocket.last.sent.filter((f) => f.op === 'sub')).toHaveLength(1);
    c.close();
  });
});

describe('over real sockets', () => {
  const SECRET = 'node-refusals-secret-long-enough-for-hs256';
  const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
  let authed: TestBroker;
  let open: TestBroker;
  beforeAll(async () => {
    authed = await startTestBroker({ authSecret: SECRET });
    open = await startTestBroker();
  });
  afterAll(async () => {
    await authed.close();
    await open.close();
  });

  it('a subscription refused `unavailable` by node A is made on node B, with one dial to A', async () => {
    const a = await ScriptedBroker.start();
    a.onFrame = (conn, frame) => {
      if (frame.op === 'sub') conn.send({ ...UNAVAILABLE, id: frame.id });
      else if (frame.id !== undefined) conn.send({ op: 'ack', id: frame.id });
    };
    const c = new SwitchboardClient({ url: [a.url, open.url], backoff: { minMs: 50, maxMs: 2000 } });
    try {
      const sub = c.subscription('orders/#');
      void sub.subscribe().catch(() => undefined);
      await until(() => sub.state === 'subscribed', 'subscribed on node B', 10_000);
      expect(a.connections.length).toBe(1);
    } finally {
      c.close();
      await a.close();
    }
  });

  it('a refreshed token that no longer allows a filter: the broker removes it, and its subscription fails', async () => {
    const now = Math.floor(Date.now() / 1000);
    // Issued long ago and expiring in 31 s: the client refreshes it at exp − 30 s, about a second from now.
    const first = await sign({ sub: 'narrowed', iat: now - 1000, exp: now + 31 });
    const narrower = await sign({ sub: 'narrowed', acl: { sub: ['a/#'], pub: ['#'] }, exp: now + 3600 });
    const c = new SwitchboardClient({ url: authed.url, token: first, getToken: () => narrower });
    const errors: SwitchboardError[] = [];
    c.on('error', (e) => errors.push(e));
    try {
      const a = c.subscription('a/x');
      const b = c.subscription('b/x');
      await Promise.all([a.subscribe(), b.subscribe()]);
      await until(() => b.state === 'failed', 'b/x failed', 10_000);
      expect(b.error?.code).toBe('forbidden');
      expect(a.state).toBe('subscribed');
      expect(errors.map((e) => e.code)).toEqual(['forbidden']);
    } finally {
      c.close();
    }
  });
});

// Token refresh over the SSE fallback, against the real broker: every POST carries a token the broker verifies, so
// after a refresh the POSTs must carry the fresh one. They carried the token the stream was opened with: the first
// frame sent after it expired was refused (401), the connection dropped and what was in that POST was lost (an
// acked publish failed with `disconnected`, a notification vanished), once per token lifetime.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SwitchboardClient, type EventSourceConstructor, type LastClose, type SwitchboardError, type WebSocketConstructor } from '@switchboard/client';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { NodeEventSource } from '../helpers/event-source.js';
import { until } from './proxy.js';

const SECRET = 'sse-refresh-secret-long-enough-for-hs256';
const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
/** Lives 2 s: the client refreshes it 0.2 s before its exp (10 % of its lifetime). Its expiry (ms since 1970) goes to `expiries`. */
const shortLived = (sub: string, expiries: number[] = []) => {
  const now = Date.now() / 1000;
  expiries.push((now + 2) * 1000);
  return sign({ sub, iat: Math.floor(now), exp: now + 2 });
};

/** A WebSocket whose upgrade a proxy blocks: it never opens, so the client falls back to SSE. */
class BlockedWebSocket {
  readyState = 0;
  onopen: ((e: unknown) => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  constructor(_url: string) {
    setTimeout(() => {
      this.readyState = 3;
      this.onclose?.({ code: 1006, reason: 'upgrade blocked' });
    }, 0);
  }
  send(): void {}
  close(): void {}
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ authSecret: SECRET, tokenGraceMs: 1000 });
});
afterAll(() => broker.close());

describe('token refresh over SSE', () => {
  it('POSTs after a refresh carry the fresh token: no drop, no lost publish, across several expiries', { timeout: 20_000 }, async () => {
    let issued = 0;
    const expiries: number[] = [];
    const c = new SwitchboardClient({
      url: broker.url,
      getToken: () => (issued++, shortLived('sam', expiries)),
      WebSocket: BlockedWebSocket as unknown as WebSocketConstructor,
      EventSource: NodeEventSource as unknown as EventSourceConstructor,
      backoff: { minMs: 10, maxMs: 50, factor: 2 },
    });
    const errors: SwitchboardError[] = [];
    const closes: LastClose[] = [];
    c.on('error', (e) => errors.push(e));
    c.on("disconnected", (close) => closes.push(close));
    try {
      await c.connect();
      expect(c.transport).toBe('sse');
      const sub = await c.subscribe('news');
      const got: unknown[] = [];
      sub.on('message', (m) => got.push(m.data));
      const issuedAtStart = issued;
      // Publishes until the token the stream was opened with and its first refresh have both expired (tokens issued
      // later expire later), so POSTs go out across refreshes and expiries: a steady stream, one every 100 ms (the
      // pause is its pace, not a wait for anything).
      const outlived = () => expiries.length > issuedAtStart && Date.now() > expiries[issuedAtStart]!;
      const failed: string[] = [];
      let sent = 0;
      for (let last = false; !last && failed.length === 0 && closes.length === 0; ) {
        last = outlived(); // one more after the second expiry
        await c.publish('news', sent++).catch((e: SwitchboardError) => failed.push(e.code));
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(issued - issuedAtStart).toBeGreaterThanOrEqual(2); // refreshed on the same stream
      expect({ failed, closes, errors: errors.map((e) => e.code) }).toEqual({ failed: [], closes: [], errors: [] });
      await until(() => got.length >= sent, 'every publish back');
      expect(got).toEqual(Array.from({ length: sent }, (_, i) => i));
    } finally {
      c.close();
    }
  });
});

/** The broker's side of an SSE stream, scripted: the test sends frames; POSTs are recorded and answered 202. */
class ScriptedEventSource {
  static last: ScriptedEventSource;
  readyState = 0;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  private readonly listeners = new Map<string, (e: { data?: unknown }) => void>();
  constructor(readonly url: string) {
    ScriptedEventSource.last = this;
  }
  addEventListener(type: string, l: (e: { data?: unknown }) => void): void {
    this.listeners.set(type, l);
  }
  close(): void {}
  open(): void {
    this.readyState = 1;
    this.listeners.get('stream')?.({ data: JSON.stringify({ post: '/sse?stream=s1' }) });
    this.frame({ op: 'hello', client: { id: 'c1', name: 'sam', transport: 'sse' }, heartbeatMs: 25000, idleMs: 60000, server: { name: 's', version: 't', protocol: 2 } });
  }
  frame(f: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
}

describe('token refresh over SSE, scripted', () => {
  it('a planned refresh POSTs its auth with the stream\'s own token (still valid), and every POST after the ack with the fresh one', async () => {
    vi.useFakeTimers();
    const posts: { token: string | null; frames: Record<string, unknown>[] }[] = [];
    vi.stubGlobal('fetch', async (url: string, init: { body: string }) => {
      const frames = init.body.split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      posts.push({ token: new URL(url).searchParams.get('token'), frames });
      // As a broker does: a ping (the client's silence watch) is answered on the stream.
      for (const f of frames) if (f.op === 'ping' && f.id === undefined) queueMicrotask(() => ScriptedEventSource.last.frame({ op: 'pong' }));
      return new Response(null, { status: 202 });
    });
    try {
      const now = Math.floor(Date.now() / 1000);
      const first = await sign({ sub: 'sam', iat: now, exp: now + 120 }); // refreshed 12 s before its exp
      const fresh = await sign({ sub: 'sam', iat: now + 108, exp: now + 228 });
      const tokens = [first, first, fresh]; // the blocked WebSocket's dial, the SSE dial, the refresh
      const c = new SwitchboardClient({
        url: 'ws://broker/ws',
        getToken: () => tokens.shift()!,
        WebSocket: BlockedWebSocket as unknown as WebSocketConstructor,
        EventSource: ScriptedEventSource as unknown as EventSourceConstructor,
        random: () => 0,
      });
      await vi.advanceTimersByTimeAsync(10); // the WebSocket is blocked: SSE next
      ScriptedEventSource.last.open();
      expect(c.state).toBe('connected');
      await vi.advanceTimersByTimeAsync(108_000); // the refresh: getToken, then the auth
      const auth = posts.flatMap((p) => p.frames.map((f) => ({ token: p.token, f }))).find((x) => x.f.op === 'auth')!;
      expect(auth.token).toBe(first);
      ScriptedEventSource.last.frame({ op: 'ack', id: auth.f.id, exp: now + 228 });
      await vi.advanceTimersByTimeAsync(0);
      void c.publish('news', 1, { ack: false });
      await vi.advanceTimersByTimeAsync(0);
      expect(posts.at(-1)).toEqual({ token: fresh, frames: [{ op: 'pub', topic: 'news', data: 1 }] });
      c.close();
    } finally {
      vi.unstubAllGlobals();
      vi.useRealTimers();
    }
  });
});

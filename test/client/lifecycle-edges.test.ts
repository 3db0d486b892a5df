// Token refresh planning and timers on close (a review helper found a getToken giving an already-due token asked in a
// tight loop; the other cases held and stay as checks): connect() twice and after close(), stop codes, sync throws.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SwitchboardClient } from '@switchboard/client';
import { FakeSocket, resetFakeSockets } from './fake-socket.js';
import { fakeJwt } from './scripted-broker.js';

beforeEach(() => {
  vi.useFakeTimers();
  resetFakeSockets();
});
afterEach(() => vi.useRealTimers());

/** Acks every `auth` the client sent and nobody answered yet; returns how many auths were sent in all. */
function ackAuths(ws: FakeSocket, answered: Set<unknown>): number {
  const auths = ws.sent.filter((f) => f.op === 'auth');
  for (const a of auths) if (!answered.has(a.id)) (answered.add(a.id), ws.frame({ op: 'ack', id: a.id }));
  return auths.length;
}

describe('token refresh whose new token is already due', () => {
  it('a getToken that gives a token due for refresh now (an exp it cannot extend, a clock ahead) is not asked in a tight loop', async () => {
    const nowS = Math.floor(Date.now() / 1000);
    // A session token whose exp is fixed (20 s from now, issued an hour ago): every refresh gives the same exp.
    const token = fakeJwt({ sub: 'a', iat: nowS - 3600, exp: nowS + 20 });
    let asked = 0;
    const client = new SwitchboardClient({
      url: 'ws://broker/ws',
      WebSocket: FakeSocket,
      token,
      getToken: () => (asked++, token),
      random: () => 0.5,
    });
    await vi.advanceTimersByTimeAsync(0);
    const ws = FakeSocket.last;
    ws.open();
    const answered = new Set<unknown>();
    // One second, the broker answering every auth within 10 ms.
    for (let i = 0; i < 100; i++) {
      await vi.advanceTimersByTimeAsync(10);
      ackAuths(ws, answered);
    }
    const auths = ackAuths(ws, answered);
    client.close();
    // The contract: refresh failures / retries go with the backoff (min 250 ms): a few per second, not one per round trip.
    expect(asked).toBeLessThanOrEqual(5);
    expect(auths).toBeLessThanOrEqual(5);
  });
});

describe('close() leaves no timer', () => {
  const states = ['connecting', 'reconnecting', 'refreshBackoff', 'refreshing', 'tokenValid'] as const;
  for (const where of states) {
    it(`closed while ${where}`, async () => {
      const nowS = Math.floor(Date.now() / 1000);
      let fail = where === 'refreshBackoff';
      const client = new SwitchboardClient({
        url: 'ws://broker/ws',
        WebSocket: FakeSocket,
        token: fakeJwt({ iat: nowS, exp: nowS + 3600 }),
        getToken: () => (fail ? Promise.reject(new Error('down')) : where === 'refreshing' ? new Promise<string>(() => {}) : fakeJwt({ iat: nowS, exp: nowS + 7200 })),
        random: () => 0.5,
      });
      await vi.advanceTimersByTimeAsync(0);
      if (where === 'reconnecting') {
        FakeSocket.last.open();
        FakeSocket.last.drop(1006);
      } else if (where !== 'connecting') {
        FakeSocket.last.open();
        if (where !== 'tokenValid') await vi.advanceTimersByTimeAsync(3570_000);
      }
      const rpc = where === 'tokenValid' ? client.rpc('x', 1, { timeoutMs: 60_000 }).catch((e) => e) : undefined;
      client.close();
      if (rpc) expect(await rpc).toMatchObject({ code: 'closed' });
      fail = false;
      expect(client.state).toBe('closed');
      expect(vi.getTimerCount()).toBe(0);
    });
  }
});

describe('checked fine', () => {
  it('getToken throwing synchronously is a failed attempt retried with backoff; connect() twice and after close()', async () => {
    let n = 0;
    const client = new SwitchboardClient({
      url: 'ws://broker/ws', WebSocket: FakeSocket, connect: false, random: () => 0.5,
      getToken: () => {
        if (n++ === 0) throw new Error('sync boom');
        return 'tok';
      },
    });
    const a = client.connect();
    const b = client.connect();
    await vi.advanceTimersByTimeAsync(0);
    expect(client.state).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(200);
    FakeSocket.last.open();
    await expect(a).resolves.toMatchObject({ op: 'hello' });
    await expect(b).resolves.toMatchObject({ op: 'hello' });
    client.close();
    await expect(client.connect()).rejects.toMatchObject({ code: 'closed' });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('connect() rejects with the reason when a stop code ends the first connect', async () => {
    for (const [code, status] of [[1008, undefined], [1009, undefined], [4004, undefined], [1006, 403]] as const) {
      resetFakeSockets();
      const client = new SwitchboardClient({ url: 'ws://broker/ws', WebSocket: FakeSocket, connect: false });
      const p = client.connect().catch((e) => e);
      await vi.advanceTimersByTimeAsync(0);
      FakeSocket.last.drop(code, 'why', status !== undefined ? `Unexpected server response: ${status}` : undefined);
      expect(await p).toMatchObject({ code: 'closed' });
      expect((await p).message).toContain(status !== undefined ? `HTTP ${status}` : `${code} why`);
      expect(client.state).toBe('closed');
      expect(vi.getTimerCount()).toBe(0);
    }
  });
});

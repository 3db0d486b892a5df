// The client's half of token refresh (CONTRACT-auth.md, issue 19 item 7): with `getToken`, a live connection's JWT
// is replaced by `{op:"auth"}` at exp − min(30 s, 10 % of its lifetime); a refused refresh is an `error` event and
// is retried with backoff; `token_expired` makes it refresh at once; a close 4003 reconnects with a fresh token.
// The schedule runs on xstate's simulated clock; the exchange runs over real sockets against a scripted server that
// speaks that part of the contract (the broker's side is built on branch i19; an end-to-end test against the broker
// is to be added once it lands).
import { afterEach, describe, expect, it } from 'vitest';
import { createActor, SimulatedClock } from 'xstate';
import { SwitchboardClient, SwitchboardError, type SocketReport } from '@switchboard/client';
import { clientLifecycleMachine, refreshAt, stateName, type LifecycleInput } from '../../packages/client/src/lifecycle.machine.js';
import { until } from './proxy.js';
import { claimsOf, fakeJwt, ScriptedBroker, type ScriptedConnection } from './scripted-broker.js';

describe('when to refresh', () => {
  const at = (exp: number, iat?: number, receivedAt = 0) => refreshAt(fakeJwt({ exp, ...(iat !== undefined && { iat }) }), receivedAt);

  it('exp − min(30 s, 10 % of the lifetime), the lifetime from iat, else from when the token came', () => {
    expect(at(3600, 0)).toBe(3_570_000); // an hour: 30 s before
    expect(at(100, 0)).toBe(90_000); // 100 s: 10 s before
    expect(at(100, undefined, 50_000)).toBe(95_000); // no iat: 50 s left when received, 5 s before
    expect(at(10.5, 10)).toBe(10_450); // a fractional exp is a NumericDate too
    expect(refreshAt('opaque', 0)).toBeUndefined();
    expect(refreshAt(fakeJwt({ sub: 'no-exp' }), 0)).toBeUndefined();
  });

  function machine(overrides: Partial<LifecycleInput>) {
    const clock = new SimulatedClock();
    const auths: string[] = [];
    let answer: (token: string) => Promise<void> = async () => {};
    const actor = createActor(clientLifecycleMachine, {
      clock,
      input: {
        dial: (_token: string | undefined, report: SocketReport) => {
          queueMicrotask(() => report.opened());
          return { close: () => {} };
        },
        backoff: { minMs: 100, maxMs: 1000, factor: 2 },
        connectTimeoutMs: 5000,
        random: () => 0.999,
        now: () => clock.now(),
        authorize: (token: string) => {
          auths.push(token);
          return answer(token);
        },
        ...overrides,
      },
    });
    actor.start();
    return {
      clock,
      actor,
      auths,
      answerWith: (f: (token: string) => Promise<void>) => (answer = f),
      connected: () => stateName(actor.getSnapshot().value) === 'connected',
    };
  }
  const flush = () => new Promise((r) => setTimeout(r, 0));

  it('a live connection refreshes at the planned time, then plans from the new token', async () => {
    let n = 0;
    // Each token lives 100 s from the simulated clock's now (starting at 0): refreshed 10 s before it expires.
    const m = machine({ getToken: () => fakeJwt({ sub: 'a', iat: 0, exp: 100 * ++n }) });
    m.actor.send({ type: 'CONNECT' });
    await flush();
    m.actor.send({ type: 'HELLO' });
    expect(m.connected()).toBe(true);
    m.clock.increment(89_999);
    await flush();
    expect(m.auths).toEqual([]);
    m.clock.increment(1);
    await flush();
    expect(m.auths.map((t) => claimsOf(t).exp)).toEqual([200]); // the second token; the first was the connect's
    // The next is 10 % of 200 s = 20 s before 200 s: at 180 s.
    m.clock.increment(180_000 - 90_000 - 1);
    await flush();
    expect(m.auths).toHaveLength(1);
    m.clock.increment(1);
    await flush();
    expect(m.auths.map((t) => claimsOf(t).exp)).toEqual([200, 300]);
  });

  it('a refused refresh is reported and retried with backoff; token_expired refreshes at once', async () => {
    const failures: unknown[] = [];
    let n = 0;
    const m = machine({ token: fakeJwt({ iat: 0, exp: 100 }), getToken: () => fakeJwt({ iat: 0, exp: 1000 + ++n }), refreshFailed: (e) => failures.push(e) });
    m.answerWith(async () => {
      throw new SwitchboardError('unauthorized', 'bad signature');
    });
    m.actor.send({ type: 'CONNECT' });
    await flush();
    m.actor.send({ type: 'HELLO' });
    m.clock.increment(90_000);
    await flush();
    expect(m.auths).toHaveLength(1);
    expect(failures).toHaveLength(1);
    // random 0.999 of the first ceiling (100 ms): the retry comes 99 ms later, then 199 ms.
    m.clock.increment(99);
    await flush();
    expect(m.auths).toHaveLength(2);
    m.clock.increment(100);
    await flush();
    expect(m.auths).toHaveLength(2);
    // The broker says it expired: no waiting out the backoff.
    m.actor.send({ type: 'TOKEN_EXPIRED' });
    await flush();
    expect(m.auths).toHaveLength(3);
    m.answerWith(async () => {});
    m.actor.send({ type: 'TOKEN_EXPIRED' }); // while refreshing already: one refresh, not two
    m.clock.increment(199);
    await flush();
    expect(m.auths).toHaveLength(4);
    expect(m.actor.getSnapshot().context.token).toBe(m.auths[3]);
  });

  it('a broker without auth (bad_frame) or too old (unknown_op): reported once, not retried', async () => {
    const failures: unknown[] = [];
    const m = machine({ token: fakeJwt({ iat: 0, exp: 100 }), getToken: () => fakeJwt({ iat: 0, exp: 200 }), refreshFailed: (e) => failures.push(e) });
    m.answerWith(async () => {
      throw new SwitchboardError('bad_frame', 'auth is not enabled on this broker');
    });
    m.actor.send({ type: 'CONNECT' });
    await flush();
    m.actor.send({ type: 'HELLO' });
    m.clock.increment(600_000);
    await flush();
    expect(m.auths).toHaveLength(1);
    expect(failures).toHaveLength(1);
  });
});

describe('over real sockets, against a server speaking the contract', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  /** A server doing the contract's auth: a token must name the connection (sub = name); 'bad' ones are refused. */
  async function authServer() {
    const s = await ScriptedBroker.start();
    cleanup.push(() => s.close());
    const auths: { conn: ScriptedConnection; token: string; at: number }[] = [];
    s.onFrame = (conn, frame) => {
      if (frame.op !== 'auth') return frame.id !== undefined && frame.op !== 'quit' && conn.send({ op: 'ack', id: frame.id });
      auths.push({ conn, token: frame.token, at: Date.now() });
      const claims = claimsOf(frame.token);
      if (claims.bad) return conn.send({ op: 'error', id: frame.id, code: 'unauthorized', message: 'the token is invalid' });
      if (claims.sub !== conn.url.searchParams.get('name')) return conn.send({ op: 'error', id: frame.id, code: 'forbidden', message: 'a refreshed token must name the same client' });
      if (frame.id !== undefined) conn.send({ op: 'ack', id: frame.id, exp: claims.exp ?? null });
    };
    return { s, auths };
  }

  function client(url: string, getToken: () => string): SwitchboardClient {
    const c = new SwitchboardClient({ url, name: 'ann', getToken, backoff: { minMs: 5, maxMs: 20 } });
    cleanup.push(() => c.close());
    return c;
  }

  // Tokens "issued" 20 s ago and expiring 2.5 s from now: refreshed 2.25 s before expiry, i.e. within ~0.25 s.
  const soon = (extra: Record<string, unknown> = {}) => {
    const now = Date.now() / 1000;
    return fakeJwt({ sub: 'ann', iat: now - 20, exp: now + 2.5, ...extra });
  };

  it('refreshes before exp with {op:"auth"} on the same connection, again and again', async () => {
    const { s, auths } = await authServer();
    const tokens: string[] = [];
    const c = client(s.url, () => (tokens.push(soon()), tokens.at(-1)!));
    await c.connect();
    expect(s.last.url.searchParams.get('token')).toBe(tokens[0]);
    await until(() => auths.length >= 2, 'two refreshes');
    expect(s.connections).toHaveLength(1);
    for (const [i, a] of auths.entries()) {
      expect(a.token).toBe(tokens[i + 1]);
      expect(a.at).toBeLessThan(claimsOf(tokens[i]!).exp * 1000); // before the token it replaces expired
    }
  });

  it('a refused refresh is an error event and is retried; token_expired asks at once; close 4003 reconnects with a fresh token', async () => {
    const { s, auths } = await authServer();
    const issued: string[] = [];
    const far = () => fakeJwt({ sub: 'ann', iat: Date.now() / 1000, exp: Date.now() / 1000 + 3600 });
    // The connect's token, then two the server refuses, then good ones.
    const c = client(s.url, () => (issued.push(issued.length === 1 || issued.length === 2 ? soon({ bad: true }) : far()), issued.at(-1)!));
    const errors: SwitchboardError[] = [];
    c.on('error', (e) => errors.push(e));
    await c.connect();
    s.last.send({ op: 'error', code: 'token_expired', message: 'the token expired; send {"op":"auth","token":…} within 30 s' });
    await until(() => auths.length >= 3, 'two refused refreshes and one accepted');
    expect(errors.map((e) => e.code)).toEqual(['unauthorized', 'unauthorized']);
    expect(claimsOf(auths[2]!.token).bad).toBeUndefined();
    expect(s.connections).toHaveLength(1);

    // The grace period ran out anyway: 4003. The client reconnects, asking getToken first.
    const before = issued.length;
    s.last.ws.close(4003, 'token expired');
    await until(() => s.connections.length === 2 && c.state === 'connected', 'the reconnect');
    expect(issued.length).toBe(before + 1);
    expect(s.last.url.searchParams.get('token')).toBe(issued.at(-1));
  });

  it('without getToken, token_expired is told to the app as an error event', async () => {
    const s = await ScriptedBroker.start();
    cleanup.push(() => s.close());
    const c = new SwitchboardClient({ url: s.url, token: 'opaque' });
    cleanup.push(() => c.close());
    const errors: SwitchboardError[] = [];
    c.on('error', (e) => errors.push(e));
    await c.connect();
    s.last.send({ op: 'error', code: 'token_expired', message: 'the token expired' });
    await until(() => errors.length === 1, 'the error event');
    expect(errors[0]).toMatchObject({ code: 'token_expired' });
    expect(s.last.frames.filter((f) => f.op === 'auth')).toEqual([]);
  });
});

// The client's lifecycle machine on a simulated clock: backoff bounds, which closes reconnect and which stop,
// the token hook, the connect timeout. The socket is a fake dial; no sockets, no real time.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createActor, SimulatedClock } from 'xstate';
import { backoffCeiling, backoffDelay, clientLifecycleMachine, type SocketReport } from '@switchboard/client';
import { stateName, tokenExpired, type LifecycleInput } from '../../packages/client/src/lifecycle.machine.js';

const BACKOFF = { minMs: 100, maxMs: 1000, factor: 2 };

function start(overrides: Partial<LifecycleInput> = {}) {
  const clock = new SimulatedClock();
  const dials: { token: string | undefined; report: SocketReport; closed: boolean }[] = [];
  const actor = createActor(clientLifecycleMachine, {
    clock,
    input: {
      dial: (token, report) => {
        const d = { token, report, closed: false };
        dials.push(d);
        return { close: () => (d.closed = true) };
      },
      backoff: BACKOFF,
      connectTimeoutMs: 5000,
      random: () => 0.999,
      ...overrides,
    },
  });
  actor.start();
  const state = () => stateName(actor.getSnapshot().value);
  const last = () => dials[dials.length - 1]!;
  const online = () => {
    last().report.opened();
    actor.send({ type: 'HELLO' });
  };
  return { clock, actor, dials, state, last, online };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

describe('client lifecycle machine', () => {
  it('idle → connecting → connected, and a drop waits a jittered backoff before dialling again', () => {
    const m = start();
    expect(m.state()).toBe('idle');
    m.actor.send({ type: 'CONNECT' });
    expect(m.state()).toBe('connecting');
    m.online();
    expect(m.state()).toBe('connected');
    m.last().report.dropped(1006, '');
    expect(m.state()).toBe('reconnecting');
    // random 0.999 of the first ceiling (100 ms): 99 ms.
    m.clock.increment(98);
    expect(m.state()).toBe('reconnecting');
    expect(m.dials).toHaveLength(1);
    m.clock.increment(1);
    expect(m.state()).toBe('connecting');
    expect(m.dials).toHaveLength(2);
  });

  it('the backoff ceiling grows by the factor up to the maximum, and resets after a hello', () => {
    const m = start();
    m.actor.send({ type: 'CONNECT' });
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      m.last().report.dropped(1006, '');
      let waited = 0;
      while (m.state() === 'reconnecting') {
        m.clock.increment(1);
        waited++;
      }
      waits.push(waited);
    }
    expect(waits).toEqual([99, 199, 399, 799, 999, 999, 999]);
    m.online();
    m.last().report.dropped(1006, '');
    expect(m.actor.getSnapshot().context.attempt).toBe(1);
  });

  it('full jitter: every wait lies in [0, min(max, min·factor^(n-1))]', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 0.9999999, noNaN: true }), fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 4 }), (attempt, r, min, factor) => {
        const b = { minMs: min, maxMs: min * 20, factor };
        const d = backoffDelay(attempt, b, () => r);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(Math.min(b.maxMs, min * factor ** (attempt - 1)));
        expect(backoffCeiling(attempt + 1, b)).toBeGreaterThanOrEqual(backoffCeiling(attempt, b));
      }),
    );
    // random 0 → immediate retry: nothing about the jitter is a floor.
    expect(backoffDelay(3, BACKOFF, () => 0)).toBe(0);
  });

  for (const code of [1000, 1001, 1005, 1006, 1011, 1013, 4000, 4001, 4002]) {
    it(`close ${code} reconnects`, () => {
      const m = start();
      m.actor.send({ type: 'CONNECT' });
      m.online();
      m.last().report.dropped(code, 'x');
      expect(m.state()).toBe('reconnecting');
      m.clock.increment(1000);
      expect(m.dials).toHaveLength(2);
    });
  }

  for (const code of [1008, 1009]) {
    it(`close ${code} stops for good`, () => {
      const m = start();
      m.actor.send({ type: 'CONNECT' });
      m.online();
      m.last().report.dropped(code, 'policy');
      expect(m.state()).toBe('closed');
      expect(m.actor.getSnapshot().context.lastClose).toMatchObject({ code, reason: 'policy' });
      m.clock.increment(60_000);
      expect(m.dials).toHaveLength(1);
    });
  }

  it('an `unavailable` error reconnects (closing the socket it came on)', () => {
    const m = start();
    m.actor.send({ type: 'CONNECT' });
    m.online();
    m.actor.send({ type: 'UNAVAILABLE', reason: 'lost redis' });
    expect(m.state()).toBe('reconnecting');
    expect(m.dials[0]!.closed).toBe(true);
    m.clock.increment(1000);
    expect(m.dials).toHaveLength(2);
  });

  it('CLOSE (quit) stops from any state and closes the socket', () => {
    const m = start();
    m.actor.send({ type: 'CONNECT' });
    m.online();
    m.actor.send({ type: 'CLOSE' });
    expect(m.state()).toBe('closed');
    expect(m.dials[0]!.closed).toBe(true);
    expect(m.actor.getSnapshot().status).toBe('done');
  });

  it('refused upgrades: 403/404 stop, 401 stops without getToken', () => {
    for (const status of [401, 403, 404]) {
      const m = start();
      m.actor.send({ type: 'CONNECT' });
      m.last().report.dropped(1006, '', status);
      expect(m.state()).toBe('closed');
    }
    const m = start();
    m.actor.send({ type: 'CONNECT' });
    m.last().report.dropped(1006, '', 429);
    expect(m.state()).toBe('reconnecting');
  });

  it('no hello within connectTimeout: the attempt is abandoned and retried', () => {
    const m = start();
    m.actor.send({ type: 'CONNECT' });
    m.last().report.opened();
    m.clock.increment(4999);
    expect(m.state()).toBe('connecting');
    m.clock.increment(1);
    expect(m.state()).toBe('reconnecting');
    expect(m.dials[0]!.closed).toBe(true);
  });

  it('getToken is asked first, again after a failed connect (a hidden 401), not after a drop of a good connection', async () => {
    let n = 0;
    const m = start({ getToken: async () => `t${++n}` });
    m.actor.send({ type: 'CONNECT' });
    expect(m.state()).toBe('authorizing');
    await flush();
    expect(m.last().token).toBe('t1');
    m.last().report.dropped(1006, ''); // never opened: a browser cannot tell a 401 from a dead host
    m.clock.increment(1000);
    expect(m.state()).toBe('authorizing');
    await flush();
    expect(m.last().token).toBe('t2');
    m.online();
    m.last().report.dropped(1001, 'shutdown');
    m.clock.increment(1000);
    expect(m.state()).toBe('connecting');
    expect(m.last().token).toBe('t2');
    expect(n).toBe(2);
    // With the status known (Node's ws), a 401 asks again too.
    m.last().report.opened();
    m.last().report.dropped(1006, '', 401);
    expect(m.state()).toBe('reconnecting');
    m.clock.increment(1000);
    await flush();
    expect(m.last().token).toBe('t3');
  });

  it('an expired JWT is renewed through getToken before reconnecting', async () => {
    const jwt = (exp: number) => `h.${btoa(JSON.stringify({ sub: 'a', exp })).replace(/=+$/, '')}.s`;
    const now = 1_700_000_000_000;
    expect(tokenExpired(jwt(now / 1000 - 1), now)).toBe(true);
    expect(tokenExpired(jwt(now / 1000 + 3600), now)).toBe(false);
    expect(tokenExpired('opaque-token', now)).toBe(false);

    let clockNow = now;
    const fresh = jwt(now / 1000 + 7200);
    const m = start({ token: jwt(now / 1000 + 60), getToken: () => fresh, now: () => clockNow });
    m.actor.send({ type: 'CONNECT' });
    expect(m.state()).toBe('connecting'); // still valid: no ask
    m.online();
    clockNow += 120_000;
    m.last().report.dropped(1006, '');
    m.clock.increment(1000);
    await flush();
    expect(m.last().token).toBe(fresh);
  });

  it('a failing getToken counts as a failed attempt and is retried with backoff', async () => {
    let calls = 0;
    const m = start({
      getToken: async () => {
        if (++calls === 1) throw new Error('auth server down');
        return 'ok';
      },
    });
    m.actor.send({ type: 'CONNECT' });
    await flush();
    expect(m.state()).toBe('reconnecting');
    expect(m.actor.getSnapshot().context.lastClose?.reason).toContain('auth server down');
    m.clock.increment(1000);
    await flush();
    expect(m.last().token).toBe('ok');
  });
});

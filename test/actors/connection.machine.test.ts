// The connection machine on xstate's SimulatedClock: its timed transitions (heartbeat, idle, idle close, token
// expiry, MQTT keepalive, close timeout) are driven by advancing the clock, not by waiting. The link, wire, mailbox,
// engine and supervisor are small recorders: what the machine asks of them is what a connection does to its socket.
import { createActor, fromCallback, SimulatedClock } from 'xstate';
import { describe, expect, it } from 'vitest';
import { connectionMachine, ConnectionEnv, tokenDeadline, type ConnectionTiming } from '../../src/actors/connection.machine.js';
import type { Link } from '../../src/actors/link.js';
import type { Engine } from '../../src/engine/engine.js';
import { CLOSE, type ProtocolError } from '../../src/protocol/errors.js';
import { Grant } from '../../src/auth/grant.js';

const TIMING: ConnectionTiming = { heartbeatMs: 1000, idleMs: 5000, idleGraceMs: 2000, closeTimeoutMs: 500, tokenGraceMs: 3000 };

interface Options {
  closeWhenIdle?: boolean;
  keepaliveMs?: number;
  exp?: number; // the token's exp, seconds since 1970 on the simulated clock
}

function connection(options: Options = {}) {
  const clock = new SimulatedClock();
  const said: string[] = [];
  const link = {
    lastActivity: 0,
    lastSeen: 0,
    isOpen: false,
    isIdle: false,
    wire: {
      canPing: true,
      ping: () => said.push('ping'),
      close: (code: number, reason: string) => said.push(`close ${code} ${reason}`),
      terminate: () => said.push('terminate'),
    },
    mailbox: { sealAndFlush: (then: () => void) => then(), discard: () => said.push('discard') },
  };
  const engine = {
    activity: (_: unknown, event: string) => said.push(event),
    fail: (_: unknown, err: ProtocolError) => said.push(`error ${err.code}`),
    closesWhenIdle: () => options.closeWhenIdle ?? false,
  };
  const supervisor = createActor(fromCallback(() => undefined));
  supervisor.start();
  const grant = options.exp === undefined ? undefined : new Grant({ name: 'n', pub: null, sub: null, admin: false, exp: options.exp });
  const actor = createActor(connectionMachine, {
    clock,
    input: {
      link: link as unknown as Link,
      env: new ConnectionEnv(supervisor, engine as unknown as Engine<Link>, TIMING, undefined, () => clock.now()),
      keepaliveMs: options.keepaliveMs,
      tokenExpiresAt: tokenDeadline(grant),
    },
  });
  actor.start();
  actor.send({ type: 'ACCEPTED' });
  /** Whether the peer answers each ping at once (a live client); tests of the heartbeat turn it off. */
  const peer = { answers: true };
  let pings = 0;
  /** Moves the clock `ms` forward, firing the timers due on the way in order; a live peer answers each ping. */
  const advance = (ms: number) => {
    for (let left = ms; left > 0; ) {
      const step = Math.min(left, 100);
      clock.increment(step);
      left -= step;
      const sent = said.filter((x) => x === 'ping').length;
      if (peer.answers && sent > pings && actor.getSnapshot().status === 'active') {
        link.lastSeen = clock.now();
        actor.send({ type: 'PONG' });
      }
      pings = sent;
    }
  };
  /** The peer is heard (any inbound bytes): a pong, or a frame. */
  const heard = () => {
    link.lastSeen = clock.now();
  };
  /** An application frame from the client (the reader marks activity, and wakes an idle connection). */
  const speaks = () => {
    heard();
    link.lastActivity = clock.now();
    if (link.isIdle) actor.send({ type: 'ACTIVE' });
  };
  const state = () => JSON.stringify(actor.getSnapshot().value);
  return { actor, clock, link, said, peer, advance, heard, speaks, state };
}

describe('connection machine on a simulated clock', () => {
  it('a listener that answers every ping is never closed, though idle (the dashboard lesson)', () => {
    const c = connection();
    c.advance(60 * TIMING.heartbeatMs); // every ping answered at once
    expect(c.actor.getSnapshot().status).toBe('active');
    expect(c.state()).toContain('"activity":"idle"');
    expect(c.said.filter((s) => s === 'ping')).toHaveLength(60);
    expect(c.said.filter((s) => s !== 'ping')).toEqual(['idle']);
  });

  it('a peer that stops answering pings is closed with 4002 one heartbeat after the unanswered ping', () => {
    const c = connection();
    c.advance(TIMING.heartbeatMs); // ping 1, answered
    c.peer.answers = false;
    c.advance(TIMING.heartbeatMs); // ping 2: never answered
    c.advance(TIMING.heartbeatMs - 1);
    expect(c.said).not.toContain(`close ${CLOSE.heartbeat} heartbeat timeout`);
    c.advance(1);
    expect(c.said.at(-1)).toBe(`close ${CLOSE.heartbeat} heartbeat timeout`);
    expect(c.state()).toBe('"closing"');
    // The socket does not close within closeTimeoutMs: it is terminated, and the actor ends with its close intent.
    c.advance(TIMING.closeTimeoutMs);
    expect(c.said.at(-1)).toBe('terminate');
    expect(c.actor.getSnapshot().status).toBe('done');
    expect(c.actor.getSnapshot().output).toEqual({ code: CLOSE.heartbeat, reason: 'heartbeat timeout', cause: 'timeout' });
  });

  it('activity pushes idleness back; idle after idleMs of silence; active again on the next frame', () => {
    const c = connection();
    c.advance(3000);
    c.speaks();
    c.advance(4999); // 4,999 ms since the frame
    expect(c.said).not.toContain('idle');
    c.advance(1);
    expect(c.said).toContain('idle');
    c.speaks();
    expect(c.said.at(-1)).toBe('active');
    expect(c.state()).toContain('"activity":"online"');
  });

  it('where --idle-close applies, an idle connection is closed with 4000 after the grace; a frame in the grace saves it', () => {
    const c = connection({ closeWhenIdle: true });
    c.advance(TIMING.idleMs);
    expect(c.said).toContain('idle');
    c.advance(TIMING.idleGraceMs - 1);
    c.speaks(); // just in time: online again, idle again idleMs after this frame
    expect(c.state()).toContain('"activity":"online"');
    c.advance(TIMING.idleMs + TIMING.idleGraceMs - 1);
    expect(c.said.some((x) => x.startsWith('close'))).toBe(false);
    c.advance(1);
    expect(c.said.at(-1)).toBe(`close ${CLOSE.idle} idle timeout`);
    expect(c.actor.getSnapshot().context.close.cause).toBe('timeout');
  });

  it('a token that expires is told once, then closed with 4003 after the grace unless a fresh one comes', () => {
    const c = connection({ exp: 10 }); // expires at 10,000 ms
    c.advance(9999);
    expect(c.said).not.toContain('error token_expired');
    c.advance(1);
    expect(c.said.filter((s) => s === 'error token_expired')).toHaveLength(1);
    c.advance(TIMING.tokenGraceMs - 1);
    c.actor.send({ type: 'TOKEN_REFRESHED', exp: 20 }); // refreshed in the grace: lives on to 20,000 ms
    c.advance(1);
    expect(c.state()).toContain('"token":"valid"');
    c.advance(20_000 - c.clock.now());
    expect(c.said.filter((s) => s === 'error token_expired')).toHaveLength(2);
    c.advance(TIMING.tokenGraceMs);
    expect(c.said.at(-1)).toBe(`close ${CLOSE.tokenExpired} token expired`);
  });

  it('MQTT keepalive: silence for keepaliveMs closes it; any traffic within it keeps it', () => {
    const c = connection({ keepaliveMs: 1500 });
    c.link.wire.canPing = false; // MQTT: the broker does not ping, the client does (PINGREQ, heard below)
    c.peer.answers = false;
    for (let i = 0; i < 10; i++) {
      c.advance(1400);
      c.heard();
    }
    expect(c.state()).toContain('"keepalive":"watching"');
    c.advance(1499);
    expect(c.said.some((s) => s.startsWith('close'))).toBe(false);
    c.advance(1);
    // (MQTT's wire ignores the broker's heartbeat pings: canPing is false, so no pong is ever overdue.)
    expect(c.said.filter((x) => x !== 'ping' && x !== 'idle')).toEqual([`close ${CLOSE.heartbeat} keepalive timeout`]);
  });
});

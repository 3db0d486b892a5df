// Closing one connection costs the timers of its group only. When an actor stops, xstate's scheduler scans every
// pending delayed event of the actor's system (cancelAll), so connection actors sharing the supervisor's system made
// each close O(open connections) and a mass disconnect quadratic. Connection actors share systems in groups of at most
// GROUP_SIZE. Here 2,000 live connections (each with its one timer pending: heartbeat and idle) and one leaves: the table
// its stop scans must hold its group's timers, not everyone's.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AnyActorRef } from 'xstate';
import { openConnection, type OpenConnection } from '../src/actors/connection.js';
import { GROUP_SIZE } from '../src/actors/tree.js';
import type { Wire } from '../src/actors/mailbox.js';
import type { Outgoing } from '../src/protocol/outgoing.js';
import { wsTextFrame } from '../src/transports/ws/frame.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { FRAME_WAIT_MS } from './helpers/waits.js';
import { TestClient } from './helpers/client.js';
import { LineClient } from './helpers/line-client.js';
import { until } from './cluster/redis.js';

const CONNECTIONS = 2000;

/** A socket in memory: a close is answered by the peer on the next turn, as a WebSocket close handshake is. */
class MemoryWire implements Wire {
  readonly transport = 'ws' as const;
  readonly canPing = true;
  readonly bufferedBytes = 0;
  conn: OpenConnection | undefined;
  encode(out: Outgoing): Buffer {
    return out.bytesFor(wsTextFrame);
  }
  write(): boolean {
    return true;
  }
  onDrain(): void {}
  ping(): void {}
  close(code: number, reason: string): void {
    setImmediate(() => this.conn?.actor.send({ type: 'SOCKET_CLOSED', code, reason }));
  }
  terminate(): void {}
}

/**
 * Delayed events pending in `actor`'s system: what xstate's cancelAll walks when `actor` stops. Read through
 * ActorSystem.getSnapshot(), the system's public (persistence) view of its scheduler.
 */
const scannedOnStop = (actor: AnyActorRef): number => Object.keys(actor.system.getSnapshot()._scheduledEvents).length;

let broker: TestBroker;
const conns: OpenConnection[] = [];

beforeAll(async () => {
  broker = await startTestBroker({ maxConnectionsPerIp: 100_000, maxConnections: 100_000, heartbeatMs: 3_600_000, idleMs: 3_600_000 });
  for (let i = 0; i < CONNECTIONS; i++) {
    const wire = new MemoryWire();
    const conn = openConnection(broker, wire, `mem:${i}`, {});
    wire.conn = conn;
    conn.actor.start();
    conns.push(conn);
  }
  await new Promise((r) => setImmediate(r));
});

afterAll(async () => {
  await broker.close();
});

describe('closing one connection among many', () => {
  it('scans only its own timers, however many connections are open', async () => {
    expect(broker.hub.inspect.clientCount()).toBe(CONNECTIONS);
    for (const { actor } of conns) expect(actor.getSnapshot().value).toEqual({ open: { activity: 'online', heartbeat: 'beating', token: 'lasting', keepalive: 'none' } });
    const leaving = conns[CONNECTIONS / 2]!;
    // The timers of its group, one per connection (full: it was opened among 2,000); with one system for all this
    // would be every connection's (2,000).
    expect(scannedOnStop(leaving.actor)).toBe(GROUP_SIZE);
    expect(broker.actors.systems).toBe(Math.ceil(CONNECTIONS / GROUP_SIZE));
    // The supervisor's stop would not scan the connections' timers either.
    expect(scannedOnStop(broker.supervisor)).toBe(0);

    leaving.actor.send({ type: 'QUIT' });
    // Its close runs on the actor's own turns: wait for it to end (a bound, not a pause).
    await vi.waitFor(() => {
      expect(leaving.actor.getSnapshot().status).toBe('done');
      expect(broker.hub.inspect.isConnected(leaving.link)).toBe(false);
    }, { timeout: FRAME_WAIT_MS, interval: 2 });
    expect(scannedOnStop(leaving.actor)).toBe(GROUP_SIZE - 1);
    // Reaped by the supervisor, and nobody else lost a timer.
    expect(broker.hub.inspect.isConnected(leaving.link)).toBe(false);
    expect(broker.hub.inspect.clientCount()).toBe(CONNECTIONS - 1);
    const others = conns.filter((c) => c !== leaving);
    const systems = new Map(others.map((c) => [c.actor.system, c.actor]));
    expect([...systems.values()].reduce((n, actor) => n + scannedOnStop(actor), 0)).toBe(CONNECTIONS - 1);
  });

  it('a mass disconnect leaves every timer cancelled and every link reaped', async () => {
    for (const { actor } of conns) if (actor.getSnapshot().status === 'active') actor.send({ type: 'SOCKET_CLOSED', code: 1006, reason: 'gone' });
    await new Promise((r) => setImmediate(r));
    expect(broker.hub.inspect.clientCount()).toBe(0);
    expect(conns.reduce((n, c) => n + scannedOnStop(c.actor), 0)).toBe(0);
  });
});

describe('heartbeat and the broker\'s own stalls', () => {
  it('the stall clock runs its fine timer only while connections are open: none wakes an idle broker 50 times a second', async () => {
    const b = await startTestBroker();
    try {
      expect(b.stalls.holders).toBe(0);
      expect(b.stalls.timerMs).toBe(b.stalls.idlePeriodMs); // no connection: the coarse timer of the delay metrics
      const ws = await TestClient.connect(b.url);
      const line = await LineClient.connect(b.tcpPort);
      expect(b.stalls.holders).toBe(2);
      expect(b.stalls.timerMs).toBe(b.stalls.periodMs);
      ws.close();
      await until(() => b.stalls.holders === 1, 'the WebSocket connection to end');
      expect(b.stalls.timerMs).toBe(b.stalls.periodMs); // the line client still holds it
      line.socket.end();
      await until(() => b.stalls.holders === 0, 'the line connection to end');
      expect(b.stalls.timerMs).toBe(b.stalls.idlePeriodMs);
      // A connection that crashes (its actor fails) lets go of it too.
      const crashing = await TestClient.connect(b.url);
      expect(b.stalls.holders).toBe(1);
      const link = [...b.hub.sessions()].find((l) => l.state === 'online')!;
      link.actor!.send({ type: 'FAULT', error: new Error('planted') });
      await until(() => b.stalls.holders === 0, 'the crashed connection to let go');
      await crashing.closed;
    } finally {
      await b.close();
    }
  });

  it('a pong that may sit unread behind a stall is not overdue: the peer gets another interval, then a dead one is closed 4002', async () => {
    const b = await startTestBroker({ heartbeatMs: 40, idleMs: 3_600_000 });
    try {
      const open = (stalled: boolean) => {
        const wire = new MemoryWire();
        // A peer that never answers a ping; `stalled`: a stall clock that says the loop was blocked after every ping.
        let blocked = 0;
        const stalls = { blockedMs: () => blocked, hold: () => undefined, release: () => undefined };
        wire.ping = () => void (stalled && (pings++, setTimeout(() => (blocked += 100), 5)));
        const conn = openConnection({ ...b, stalls }, wire, `mem:${stalled}`, {});
        wire.conn = conn;
        conn.actor.start();
        return { ...conn, wire };
      };
      let pings = 0;
      const dead = open(false);
      const behindStalls = open(true);
      await new Promise<void>((r) => dead.actor.subscribe({ complete: () => r() }));
      expect(dead.actor.getSnapshot().output).toMatchObject({ code: 4002 });
      // Every check came after a stall: still open, pinged again each interval.
      while (pings < 4 && behindStalls.actor.getSnapshot().status === 'active') await new Promise((r) => setTimeout(r, 10));
      expect(behindStalls.actor.getSnapshot().value).toMatchObject({ open: { heartbeat: 'beating' } });
      behindStalls.wire.ping = () => undefined; // the stalls stop: now it is the peer that does not answer
      await new Promise<void>((r) => behindStalls.actor.subscribe({ complete: () => r() }));
      expect(behindStalls.actor.getSnapshot().output).toMatchObject({ code: 4002 });
    } finally {
      await b.close();
    }
  });
});

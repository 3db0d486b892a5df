// A connection lost without a close (a laptop that slept, a network that changed under it) stayed `connected` and
// silent for ever: the client never noticed. Now one that has heard nothing for two of the broker's heartbeats
// (hello's heartbeatMs) sends a ping, and one still silent a heartbeat later is taken for lost: it reconnects (and
// resumes). A client that only listens hears the pongs and is never dropped. Scripted broker, fake timers.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeSocket, onlineClient, resetFakeSockets } from './fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
  resetFakeSockets();
});
afterEach(() => vi.useRealTimers());

const online = () => onlineClient(); // hello says heartbeatMs 25000

describe('a connection that goes silent', () => {
  it('is pinged after two heartbeats of silence and taken for lost after a third: the client reconnects', async () => {
    const c = await online();
    const first = FakeSocket.last;
    const states: string[] = [];
    c.on('reconnecting', () => states.push('reconnecting'));
    await vi.advanceTimersByTimeAsync(49_000);
    expect(first.sent.filter((f) => f.op === 'ping')).toEqual([]);
    await vi.advanceTimersByTimeAsync(13_000); // 62 s of silence
    expect(first.sent.filter((f) => f.op === 'ping')).toEqual([{ op: 'ping' }]);
    expect(c.state).toBe('connected');
    await vi.advanceTimersByTimeAsync(13_000); // 75 s: still nothing
    expect(states).toEqual(['reconnecting']);
    await vi.advanceTimersByTimeAsync(5_000); // the backoff, then a new socket
    expect(FakeSocket.all.length).toBe(2);
  });

  it('a client that hears the pongs (or anything) stays connected however long nobody publishes', async () => {
    const c = await online();
    const first = FakeSocket.last;
    let answered = 0;
    for (let t = 0; t < 600_000; t += 5_000) {
      await vi.advanceTimersByTimeAsync(5_000);
      const pings = first.sent.filter((f) => f.op === 'ping').length;
      if (pings > answered) {
        first.frame({ op: 'pong' });
        answered = pings;
      }
    }
    expect(c.state).toBe('connected');
    expect(FakeSocket.all.length).toBe(1);
    expect(answered).toBeGreaterThan(0);
  });
});

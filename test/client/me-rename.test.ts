// `client.me` is this connection's client info: after a successful rename it kept the name the connection had at
// hello (the broker and everyone else already saw the new one).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SwitchboardClient } from '@switchboard/client';
import { FakeSocket, resetFakeSockets } from './fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
  resetFakeSockets();
});
afterEach(() => vi.useRealTimers());

describe('client.me after a rename', () => {
  it('carries the new name, and the next connection the name its hello gives', async () => {
    const c = new SwitchboardClient({ url: 'ws://broker/ws', WebSocket: FakeSocket, random: () => 0, requestTimeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open({ id: 'c1', name: 'guest-1' });
    const renamed = c.rename('bob');
    FakeSocket.last.ack('rename', { name: 'bob' });
    expect(await renamed).toBe('bob');
    expect(c.me).toMatchObject({ id: 'c1', name: 'bob' });
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    expect(new URL(FakeSocket.last.url).searchParams.get('name')).toBe('bob');
    FakeSocket.last.open({ id: 'c2', name: 'bob' });
    expect(c.me).toMatchObject({ id: 'c2', name: 'bob' });
  });

  it('carries the name our own rename event tells (a presence subscription sees it)', async () => {
    const c = new SwitchboardClient({ url: 'ws://broker/ws', WebSocket: FakeSocket, random: () => 0, requestTimeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open({ id: 'c1', name: 'guest-1' });
    FakeSocket.last.frame({ op: 'event', event: 'rename', client: { id: 'c1', name: 'ann', transport: 'ws' }, topic: 'room', old: 'guest-1' });
    expect(c.me?.name).toBe('ann');
  });
});

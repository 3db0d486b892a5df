// A `sub` the broker has not answered within requestTimeoutMs is sent again on the same connection; one that was
// unsubscribed meanwhile was sent again too, after its `unsub`: the broker, serving one connection in order, then
// held the filter (and, with presence, showed the client as a member again) for a subscription that had ended.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeSocket, onlineClient, resetFakeSockets } from './fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
  resetFakeSockets();
});
afterEach(() => vi.useRealTimers());

const online = () => onlineClient();

describe('a sub without an answer in time', () => {
  it('is sent again while the subscription stands', async () => {
    const c = await online();
    const sub = c.subscription('room', { presence: true });
    void sub.subscribe();
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeSocket.last.sent.filter((f) => f.op === 'sub')).toHaveLength(2);
  });

  it('is not sent again once the subscription was unsubscribed: its unsub stays the last word', async () => {
    const c = await online();
    const sub = c.subscription('room', { presence: true });
    const subscribed = sub.subscribe();
    subscribed.catch(() => {});
    const left = sub.unsubscribe();
    left.catch(() => {});
    expect(FakeSocket.last.sent.map((f) => f.op)).toEqual(['sub', 'unsub']);
    await vi.advanceTimersByTimeAsync(1000); // the broker is slow: neither is answered in time
    expect(FakeSocket.last.sent.map((f) => f.op)).toEqual(['sub', 'unsub']);
    await expect(subscribed).rejects.toMatchObject({ code: 'closed' });
    expect(sub.state).toBe('unsubscribed');
  });
});

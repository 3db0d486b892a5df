// Frames handed to the SSE socket before close() (a notification publish, the quit) are POSTed, as a
// WebSocket sends what was written before its close (they were dropped: found by a review helper).
import { describe, expect, it } from 'vitest';
import { SseSocket, type EventSourceLike } from '../../packages/client/src/sse-socket.js';
import { until } from '../helpers/waits.js';

class FakeEventSource implements EventSourceLike {
  static last: FakeEventSource;
  readyState = 0;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  closed = false;
  private readonly listeners = new Map<string, (e: { data?: unknown }) => void>();
  constructor(readonly url: string) {
    FakeEventSource.last = this;
  }
  addEventListener(type: string, l: (e: { data?: unknown }) => void): void {
    this.listeners.set(type, l);
  }
  close(): void {
    this.closed = true;
  }
  emit(type: string, data: string): void {
    this.listeners.get(type)?.({ data });
  }
}

describe('SseSocket close()', () => {
  it('a quit (and a publish) written while a POST is out still go, before the stream is closed', async () => {
    const bodies: string[] = [];
    const answers: ((r: Response) => void)[] = [];
    const fetcher = ((_url: string, init: { body: string }) => {
      bodies.push(init.body);
      return new Promise<Response>((r) => answers.push(r));
    }) as unknown as typeof fetch;
    const s = new SseSocket('ws://broker/ws', FakeEventSource as never, fetcher);
    FakeEventSource.last.emit('stream', JSON.stringify({ post: '/sse?stream=x' }));
    s.send('{"op":"pub","topic":"a","data":1}'); // POSTed at once
    s.send('{"op":"pub","topic":"a","data":2}'); // waits for the first POST (a notification: its promise already resolved)
    s.send('{"op":"quit"}');
    s.close(1000);
    expect(FakeEventSource.last.closed).toBe(false); // not before what was written goes
    answers[0]!(new Response(null, { status: 202 }));
    await until(() => bodies.length > 1, 'the second POST');
    expect(bodies).toEqual(['{"op":"pub","topic":"a","data":1}', '{"op":"pub","topic":"a","data":2}\n{"op":"quit"}']);
    expect(FakeEventSource.last.closed).toBe(false); // the stream waits for that POST
    answers[1]!(new Response(null, { status: 202 }));
    await until(() => FakeEventSource.last.closed, 'the stream closed once the quit was POSTed');
  });
});

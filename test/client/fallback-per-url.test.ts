// The SSE fallback with several URLs: each URL keeps its own transport. A proxy that blocks WebSocket upgrades on the
// way to one node sends that URL to SSE, never the others (the client used to stay on SSE for every URL, for good,
// once one WebSocket had failed); a URL on SSE tries WebSocket again WS_RETRY_MS after its WebSocket failed.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { SwitchboardClient, type EventSourceConstructor, type WebSocketConstructor } from '@switchboard/client';
import { WS_RETRY_MS } from '../../packages/client/src/fallback.js';
import { FakeSocket, resetFakeSockets } from './fake-socket.js';
import { CuttingProxy } from './proxy.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { NodeEventSource } from '../helpers/event-source.js';
import { freePort } from '../helpers/ports.js';
import { UpgradeBlockingProxy } from '../helpers/upgrade-blocking-proxy.js';
import { until } from '../helpers/waits.js';

/** An in-memory EventSource: the test opens the stream (and says hello on it) or fails it. */
class FakeEventSource {
  static all: FakeEventSource[] = [];
  readyState = 0;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  private readonly listeners = new Map<string, ((event: { data?: unknown }) => void)[]>();

  constructor(readonly url: string) {
    FakeEventSource.all.push(this);
  }

  addEventListener(type: string, listener: (event: { data?: unknown }) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.readyState = 2;
  }

  /** The stream opens and the broker says hello on it (a heartbeat of an hour: the fake clock moves minutes). */
  open(id: string): void {
    this.readyState = 1;
    for (const l of this.listeners.get('stream') ?? []) l({ data: JSON.stringify({ post: `/sse?stream=${id}` }) });
    const client = { id, name: `guest-${id}`, transport: 'sse', addr: '127.0.0.1:1' };
    const server = { name: 'switchboard', version: 'test', protocol: 2 };
    this.onmessage?.({ data: JSON.stringify({ op: 'hello', client, heartbeatMs: 3_600_000, idleMs: 60_000, idleClose: 'tcp', server }) });
  }

  fail(): void {
    this.onerror?.({});
  }
}

const host = (s: { url: string }) => new URL(s.url).host;
const EventSource = FakeEventSource as unknown as EventSourceConstructor;

describe('the transport is each URL’s own (fake sockets and timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    resetFakeSockets();
    FakeEventSource.all = [];
  });
  afterEach(() => vi.useRealTimers());

  it("node A's WebSocket fails: B is dialled over WebSocket; A over SSE on its next turn, then B over WebSocket again", async () => {
    const c = new SwitchboardClient({ url: ['ws://a/ws', 'ws://b/ws'], WebSocket: FakeSocket, EventSource, random: () => 0 });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.drop(1006); // A's upgrade never opened
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all.map(host)).toEqual(['a', 'b']);
    expect(FakeEventSource.all).toEqual([]);
    FakeSocket.last.open({ id: 'c1' });
    expect(c.transport).toBe('ws');
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeEventSource.all.map(host)).toEqual(['a']);
    FakeEventSource.all[0]!.open('c2');
    expect(c.transport).toBe('sse');
    FakeEventSource.all[0]!.fail(); // the stream is lost after it served
    expect(c.transport).toBe('ws'); // the next dial is B's
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all.map(host)).toEqual(['a', 'b', 'b']);
    expect(FakeEventSource.all).toHaveLength(1);
    c.close();
  });

  it('a URL on SSE stays on it while it works, and tries WebSocket again once WS_RETRY_MS passed since its WebSocket failed', async () => {
    const c = new SwitchboardClient({ url: 'ws://a/ws', WebSocket: FakeSocket, EventSource, random: () => 0 });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    FakeEventSource.all[0]!.open('c1');
    expect(c.state).toBe('connected');

    // Lost a minute later: SSE again at once, no WebSocket tried (a blocking proxy would only refuse it again).
    await vi.advanceTimersByTimeAsync(60_000);
    FakeEventSource.all[0]!.fail();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(1);
    expect(FakeEventSource.all).toHaveLength(2);
    FakeEventSource.all[1]!.open('c2');

    // Lost once the retry time has passed: WebSocket first; it fails again, so SSE again.
    await vi.advanceTimersByTimeAsync(WS_RETRY_MS);
    FakeEventSource.all[1]!.fail();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(2);
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeEventSource.all).toHaveLength(3);
    c.close();
  });

  it('wsRetryMs sets how long a URL stays on SSE: WebSocket is tried there again once it passed, not before', async () => {
    const c = new SwitchboardClient({ url: 'ws://a/ws', WebSocket: FakeSocket, EventSource, random: () => 0, wsRetryMs: 20_000 });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    FakeEventSource.all[0]!.open('c1');
    // Lost before 20 s passed since the WebSocket failed: SSE again.
    await vi.advanceTimersByTimeAsync(19_000);
    FakeEventSource.all[0]!.fail();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(1);
    expect(FakeEventSource.all).toHaveLength(2);
    FakeEventSource.all[1]!.open('c2');
    // Lost after it (well before the default 5 minutes): WebSocket first.
    await vi.advanceTimersByTimeAsync(2_000);
    FakeEventSource.all[1]!.fail();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(2);
    c.close();
    for (const bad of [0, -1, Number.NaN, '60000', 2 ** 31]) {
      expect(() => new SwitchboardClient({ url: 'ws://a/ws', WebSocket: FakeSocket, wsRetryMs: bad as number })).toThrow(/wsRetryMs must be a number of ms above 0/);
    }
  });

  it('a node that is down (its SSE dial fails too) is dialled over WebSocket again', async () => {
    const c = new SwitchboardClient({ url: 'ws://a/ws', WebSocket: FakeSocket, EventSource, random: () => 0 });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    FakeEventSource.all[0]!.fail();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(2);
    FakeSocket.last.open({ id: 'c1' });
    expect(c.transport).toBe('ws');
    c.close();
  });
});

describe('a refused upgrade with several URLs (fake sockets and timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    resetFakeSockets();
    FakeEventSource.all = [];
  });
  afterEach(() => vi.useRealTimers());
  /** The client's next dial (after its backoff): `ws a`, `sse b`, …. */
  const seen = { ws: 0, sse: 0 };
  const nextDial = async (): Promise<string> => {
    for (let waited = 0; waited < 120_000; waited += 50) {
      if (FakeSocket.all.length > seen.ws) return `ws ${host(FakeSocket.all[seen.ws++]!)}`;
      if (FakeEventSource.all.length > seen.sse) return `sse ${host(FakeEventSource.all[seen.sse++]!)}`;
      await vi.advanceTimersByTimeAsync(50);
    }
    return 'none';
  };
  const refuse = () => FakeSocket.last.drop(1006, '', 'Unexpected server response: 403');
  const failStream = () => FakeEventSource.all[FakeEventSource.all.length - 1]!.fail();

  it('one node refusing both ways does not stop the client: it connects to the other', async () => {
    seen.ws = seen.sse = 0;
    const c = new SwitchboardClient({ url: ['ws://a/ws', 'ws://b/ws'], WebSocket: FakeSocket, EventSource, random: () => 0 });
    expect(await nextDial()).toBe('ws a');
    refuse();
    expect(await nextDial()).toBe('ws b');
    FakeSocket.last.drop(1006); // B is down
    expect(await nextDial()).toBe('sse a');
    failStream(); // A refuses its stream too: A refuses for good, but B is still to be had
    expect(await nextDial()).toBe('sse b');
    failStream(); // B still down
    expect(c.state).not.toBe('closed');
    expect(await nextDial()).toBe('ws a');
    refuse();
    expect(c.state).not.toBe('closed');
    expect(await nextDial()).toBe('ws b');
    FakeSocket.last.open({ id: 'c1' });
    expect(c.state).toBe('connected');
    expect(c.transport).toBe('ws');
    c.close();
  });

  it('a URL the platform refuses at construction (say mixed content) is passed over: the next URL is dialled', async () => {
    seen.ws = seen.sse = 0;
    class Picky extends FakeSocket {
      constructor(url: string) {
        if (url.startsWith('ws://a/')) throw new Error('SecurityError: insecure WebSocket from a secure page');
        super(url);
      }
    }
    const c = new SwitchboardClient({ url: ['ws://a/ws', 'ws://b/ws'], WebSocket: Picky as unknown as WebSocketConstructor, random: () => 0 });
    expect(await nextDial()).toBe('ws b');
    FakeSocket.last.open({ id: 'c1' });
    expect(c.state).toBe('connected');
    c.close();
  });

  it('every node refusing both ways stops the client, with the refusal', async () => {
    seen.ws = seen.sse = 0;
    const c = new SwitchboardClient({ url: ['ws://a/ws', 'ws://b/ws'], WebSocket: FakeSocket, EventSource, random: () => 0 });
    const closed = new Promise<unknown>((r) => c.on('closed', r));
    expect(await nextDial()).toBe('ws a');
    refuse();
    expect(await nextDial()).toBe('ws b');
    refuse();
    expect(await nextDial()).toBe('sse a');
    failStream();
    expect(await nextDial()).toBe('sse b');
    failStream();
    expect(await nextDial()).toBe('ws a');
    refuse(); // A refused both ways: not yet final, B has not been refused so since
    expect(c.state).not.toBe('closed');
    expect(await nextDial()).toBe('ws b');
    refuse(); // every node refused, both ways
    await vi.advanceTimersByTimeAsync(0);
    expect(c.state).toBe('closed');
    expect(await closed).toMatchObject({ code: 1006, status: 403 });
  });
});

describe('over real sockets: one URL behind an upgrade-blocking proxy, one straight to the broker', () => {
  let broker: TestBroker;
  let blocker: UpgradeBlockingProxy;
  let direct: CuttingProxy;
  beforeAll(async () => {
    // Any port of 127.0.0.1 is this broker's name (--public-host without a port): the event stream answers through both.
    broker = await startTestBroker({ publicHost: '127.0.0.1' });
    blocker = await UpgradeBlockingProxy.start(await freePort(), broker.port);
    direct = await CuttingProxy.start(broker.port);
  });
  afterAll(async () => {
    await direct.close();
    await blocker.close();
    await broker.close();
  });

  it('WebSocket where it works, SSE only behind the proxy, every message once and in order across both', async () => {
    const client = new SwitchboardClient({
      url: [`ws://127.0.0.1:${blocker.port}/ws`, direct.url],
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      EventSource: NodeEventSource as unknown as EventSourceConstructor,
      backoff: { minMs: 10, maxMs: 50, factor: 2 },
    });
    // What the broker's hello says of each connection: the transport it really is.
    const transports: string[] = [];
    client.on('connected', (hello) => transports.push(hello.client.transport));
    try {
      await client.connect();
      expect(transports).toEqual(['ws']);
      expect(blocker.upgradesRefused).toBe(1);
      const sub = await client.subscribe('feed');
      const got: unknown[] = [];
      sub.on('message', (m) => got.push(m.data));
      broker.hub.publish('feed', 1);
      await until(() => got.length === 1, 'the first message, over WebSocket');

      // The direct way is cut: the client's next turn is the proxy's URL, over SSE at once (remembered, not re-tried).
      direct.cut();
      await until(() => transports.length === 2 && client.state === 'connected', 'the reconnect through the proxy');
      expect(transports[1]).toBe('sse');
      expect(blocker.upgradesRefused).toBe(1);
      broker.hub.publish('feed', 2);
      await until(() => got.length === 2, 'the second message, over SSE');

      // The stream is cut: back to the direct URL, over WebSocket (the proxy's refusal was only the proxy's).
      blocker.cutAll();
      await until(() => transports.length === 3 && client.state === 'connected', 'the reconnect straight to the broker');
      expect(transports[2]).toBe('ws');
      expect(client.transport).toBe('ws');
      broker.hub.publish('feed', 3);
      await until(() => got.length === 3, 'the third message, over WebSocket again');
      expect(got).toEqual([1, 2, 3]);
    } finally {
      client.close();
    }
  });
});

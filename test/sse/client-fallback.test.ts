// The client library over its SSE fallback, in Node, behind a proxy that refuses WebSocket upgrades: it falls back
// by itself, and keeps its promises across a cut stream: every message once, in order, when the broker still holds
// them; `notRecovered` when it does not (then the messages after it, once).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SwitchboardClient, type EventSourceConstructor, type Message, type WebSocketConstructor } from '@switchboard/client';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { freePort } from '../helpers/ports.js';
import { UpgradeBlockingProxy } from '../helpers/upgrade-blocking-proxy.js';
import { NodeEventSource } from '../helpers/event-source.js';

let broker: TestBroker;
let proxy: UpgradeBlockingProxy;
beforeAll(async () => {
  const port = await freePort();
  // The proxy's address is a name of this broker (--public-host), as for a real proxy in front of it.
  broker = await startTestBroker({ historySize: 3, publicHost: `127.0.0.1:${port}` });
  proxy = await UpgradeBlockingProxy.start(port, broker.port);
});
afterAll(async () => {
  await proxy.close();
  await broker.close();
});

const until = async (cond: () => boolean, what: string, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('client library: SSE fallback in Node', () => {
  it('falls back, then after cuts resumes exactly (recovered) or says notRecovered, every message once and in order', async () => {
    const client = new SwitchboardClient({
      url: `ws://127.0.0.1:${proxy.port}/ws`,
      name: 'fallback',
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      EventSource: NodeEventSource as unknown as EventSourceConstructor,
      backoff: { minMs: 10, maxMs: 50, factor: 2 },
    });
    const verdicts: string[] = [];
    // Counted from the event, not polled from the state: with a 10 ms backoff a poll can miss a whole cut.
    let cuts = 0;
    client.on('disconnected', () => cuts++);
    try {
      await client.connect();
      expect(client.transport).toBe('sse');
      expect(client.me?.transport).toBe('sse');
      expect(proxy.upgradesRefused).toBeGreaterThan(0);
      const sub = await client.subscribe('feed');
      const got: Message[] = [];
      sub.on('message', (m) => got.push(m));
      sub.on('recovered', () => verdicts.push('recovered'));
      sub.on('notRecovered', (r) => verdicts.push(`notRecovered ${r.reason}`));
      const publish = (n: number) => broker.hub.publish('feed', n);
      publish(1);
      publish(2);
      await until(() => got.length === 2, 'the first two');
      expect((await client.publish('feed', 'own')).seq).toBe(3); // a POSTed publish, acknowledged on the stream
      await until(() => got.length === 3, 'its own copy');

      // Cut; two published meanwhile (the broker keeps 3): resumed exactly.
      proxy.cutAll();
      await until(() => cuts === 1, 'the cut');
      publish(4);
      publish(5);
      await until(() => got.length === 5 && client.state === 'connected', 'the resume');
      expect(verdicts).toEqual(['recovered']);

      // Cut; five published meanwhile: the first two are gone from the broker's history: said, then the rest.
      // Published from the disconnected event itself: a poll could notice the cut only after a 10 ms reconnect.
      const whileAway = new Promise<void>((resolve) =>
        client.once('disconnected', () => {
          for (let n = 6; n <= 10; n++) publish(n);
          resolve();
        }),
      );
      proxy.cutAll();
      await whileAway;
      await until(() => cuts === 2, 'the second cut');
      await until(() => verdicts.length === 2 && client.state === 'connected', 'the second verdict');
      expect(verdicts[1]).toBe('notRecovered history_trimmed');
      publish(11);
      await until(() => got.at(-1)?.data === 11, 'the live message after');
      // What the broker still held (8–10) came after the verdict, then the live one: none twice.
      expect(got.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 8, 9, 10, 11]);
      expect(client.transport).toBe('sse');
    } finally {
      client.close();
    }
  });

  it('a refusal the stream gets too (a host the broker does not serve) stops the client after one try of each', async () => {
    const stranger = await UpgradeBlockingProxy.start(await freePort(), broker.port); // not a --public-host
    const client = new SwitchboardClient({
      url: `ws://127.0.0.1:${stranger.port}/ws`,
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      EventSource: NodeEventSource as unknown as EventSourceConstructor,
      backoff: { minMs: 10, maxMs: 50, factor: 2 },
    });
    try {
      await expect(client.connect()).rejects.toMatchObject({ code: 'closed', message: expect.stringContaining('HTTP 403') });
      expect(stranger.upgradesRefused).toBe(2);
    } finally {
      client.close();
      await stranger.close();
    }
  });

  it('a burst of publishes while a POST is out goes in POSTs the broker takes (under a low --max-payload: one frame a POST)', async () => {
    const port = await freePort();
    const small = await startTestBroker({ maxPayload: 1024, publicHost: `127.0.0.1:${port}` });
    const smallProxy = await UpgradeBlockingProxy.start(port, small.port);
    const client = new SwitchboardClient({
      url: `ws://127.0.0.1:${smallProxy.port}/ws`,
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      EventSource: NodeEventSource as unknown as EventSourceConstructor,
    });
    let drops = 0;
    client.on('disconnected', () => drops++);
    try {
      await client.connect();
      expect(client.transport).toBe('sse');
      // 50 publishes of ~200 bytes at once: the first goes alone, the 49 queued behind it are ~10 KB, over 1024.
      const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => client.publish('burst', `${i}:${'x'.repeat(180)}`)));
      expect(acks.map((a) => a.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect(drops).toBe(0);
    } finally {
      client.close();
      await smallProxy.close();
      await small.close();
    }
  });
});

// The client against real brokers: through a broker restart (memory engine: the numbering restarts, so the
// resume is reported not recovered) and through connection cuts at random points of the byte stream.
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchboardClient, type Message, type Subscription, type Recovery } from '@switchboard/client';
import { startTestBroker } from '../helpers/broker.js';
import { CuttingProxy, until } from './proxy.js';

const FAST = { minMs: 5, maxMs: 50, factor: 2 };
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function client(url: string, name?: string): SwitchboardClient {
  const c = new SwitchboardClient({ url, backoff: FAST, requestTimeoutMs: 5000, ...(name && { name }) });
  cleanup.push(() => c.close());
  return c;
}

function record<T>(sub: Subscription<T>): Message<T>[] {
  const seen: Message<T>[] = [];
  sub.on('message', (m) => seen.push(m));
  return seen;
}

describe('client against a real broker', () => {
  it('a broker restart (memory engine) is reported as notRecovered, and the new numbering is delivered', { timeout: 30_000 }, async () => {
    const first = await startTestBroker();
    const port = first.port;
    const reader = client(first.url, 'reader');
    const sub = await reader.subscribe<string>('news', { presence: true });
    const seen = record(sub);
    const verdicts: Recovery[] = [];
    sub.on('notRecovered', (v) => verdicts.push(v));
    const writer = client(first.url);
    for (const text of ['a', 'b', 'c']) await writer.publish('news', text);
    await until(() => seen.length === 3, 'three messages');

    const states: string[] = [];
    reader.on('state', (s) => states.push(s));
    await first.close();
    await until(() => reader.state === 'reconnecting', 'reconnecting');
    const second = await startTestBroker({ port });
    cleanup.push(() => second.close());
    await until(() => sub.state === 'subscribed' && verdicts.length === 1, 'the resume verdict');
    expect(verdicts[0]).toMatchObject({ recovered: false });
    expect(['epoch_changed', 'unknown_position']).toContain(verdicts[0]!.reason);
    expect(states).toContain('connected');
    expect(reader.me?.name).toBe('reader');
    await until(() => [...sub.presence.values()].some((m) => m.name === 'reader'), 'presence re-synced');

    await until(() => writer.state === 'connected', 'writer back');
    await writer.publish('news', 'after restart'); // seq 1 of a new numbering: below our old position, still new
    await until(() => seen.length === 4, 'the first message after the restart');
    expect(seen.map((m) => [m.seq, m.data])).toEqual([
      [1, 'a'],
      [2, 'b'],
      [3, 'c'],
      [1, 'after restart'],
    ]);
  });

  it('connection cuts while messages flow: every message once, in order, and requests in flight fail cleanly', { timeout: 30_000 }, async () => {
    const broker = await startTestBroker({ historySize: 1000 });
    cleanup.push(() => broker.close());
    const proxy = await CuttingProxy.start(broker.port);
    cleanup.push(() => proxy.close());
    const reader = client(proxy.url);
    const sub = await reader.subscribe<number>('flow/x');
    const seen = record(sub);
    const writer = client(broker.url);
    await writer.connect();
    const N = 300;
    for (let i = 1; i <= N; i++) {
      await writer.publish('flow/x', i);
      if (i % 37 === 0) proxy.cutAfterBytes(Math.floor(Math.random() * 200));
      if (i % 53 === 0) proxy.cut();
    }
    await until(() => seen.length >= N, `${N} messages (have ${seen.length})`, 20_000);
    expect(proxy.cuts).toBeGreaterThan(3);
    expect(seen.map((m) => m.data)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
  });
});

describe('keyed publishes through a dropped connection', () => {
  it('a keyed publish whose ack was lost in a cut is sent again after the reconnect, and published once', { timeout: 30_000 }, async () => {
    const broker = await startTestBroker();
    cleanup.push(() => broker.close());
    const proxy = await CuttingProxy.start(broker.port);
    cleanup.push(() => proxy.close());
    const reader = client(broker.url);
    const sub = await reader.subscribe<string>('keyed/x');
    const seen = record(sub);
    const writer = client(proxy.url);
    await writer.connect();
    // The publish reaches the broker; the connection drops before a byte of its ack comes back.
    proxy.cutAfterBytes(0);
    const ack = await writer.publish('keyed/x', 'once', { key: 'order-41' });
    expect(proxy.cuts).toBe(1);
    expect(ack).toMatchObject({ seq: 1, duplicate: true, delivered: 0 });
    expect(await writer.publish('keyed/x', 'next', { key: 'order-42' })).toMatchObject({ seq: 2 });
    await until(() => seen.length >= 2, 'the next message');
    expect(seen.map((m) => [m.seq, m.data])).toEqual([
      [1, 'once'],
      [2, 'next'],
    ]);
  });
});

describe('property: whatever drops and reconnects happen, the app sees every message once and in order', () => {
  type Step = { kind: 'publish'; topic: 'p/a' | 'p/b'; count: number } | { kind: 'cut' } | { kind: 'tear'; bytes: number } | { kind: 'wait' };
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('publish' as const), topic: fc.constantFrom('p/a' as const, 'p/b' as const), count: fc.integer({ min: 1, max: 8 }) }) },
    { weight: 2, arbitrary: fc.constant({ kind: 'cut' as const }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('tear' as const), bytes: fc.integer({ min: 0, max: 300 }) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'wait' as const }) },
  );

  it('concrete and wildcard subscriptions through a cutting proxy', { timeout: 120_000 }, async () => {
    const broker = await startTestBroker({ historySize: 10_000 });
    cleanup.push(() => broker.close());
    let run = 0;
    let reconnects = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
        const prefix = `r${++run}`;
        const proxy = await CuttingProxy.start(broker.port);
        const reader = new SwitchboardClient({ url: proxy.url, backoff: FAST, requestTimeoutMs: 5000 });
        const writer = new SwitchboardClient({ url: broker.url, backoff: FAST });
        reader.on('reconnecting', () => reconnects++);
        try {
          const a = await reader.subscribe<number>(`${prefix}/p/a`);
          const all = await reader.subscribe<number>(`${prefix}/p/+`);
          const seenA = record(a);
          const seenAll = record(all);
          const verdicts: Recovery[] = [];
          for (const s of [a, all]) s.on('notRecovered', (v) => verdicts.push(v));
          await writer.connect();
          const sent: Record<string, number> = { [`${prefix}/p/a`]: 0, [`${prefix}/p/b`]: 0 };
          for (const s of steps) {
            if (s.kind === 'publish') {
              const topic = `${prefix}/${s.topic}`;
              for (let i = 0; i < s.count; i++) await writer.publish(topic, ++sent[topic]!);
            } else if (s.kind === 'cut') proxy.cut();
            else if (s.kind === 'tear') proxy.cutAfterBytes(s.bytes);
            else await until(() => reader.state === 'connected', 'reconnected');
          }
          const total = sent[`${prefix}/p/a`]! + sent[`${prefix}/p/b`]!;
          await until(() => seenAll.length >= total && seenA.length >= sent[`${prefix}/p/a`]!, `all ${total} messages`, 8_000);
          const byTopic = (ms: Message<number>[], t: string) => ms.filter((m) => m.topic === `${prefix}/${t}`).map((m) => m.data);
          const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
          expect(byTopic(seenA, 'p/a')).toEqual(upTo(sent[`${prefix}/p/a`]!));
          expect(byTopic(seenAll, 'p/a')).toEqual(upTo(sent[`${prefix}/p/a`]!));
          expect(byTopic(seenAll, 'p/b')).toEqual(upTo(sent[`${prefix}/p/b`]!));
          // Protocol 2: same broker, history big enough: every resume is recovered, and says so.
          if (reader.hello?.server.protocol === 2) expect(verdicts).toEqual([]);
        } finally {
          reader.close();
          writer.close();
          await proxy.close();
        }
      }),
      { numRuns: 25 },
    );
    expect(reconnects, 'the runs really dropped connections').toBeGreaterThan(10);
  });
});

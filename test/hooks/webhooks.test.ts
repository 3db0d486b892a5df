// Webhooks through a real backend process that fails every other request: every event arrives at least once,
// each with an id to deduplicate on, and the events say what happened (connected, occupied, presence, vacated…).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { LineClient } from '../helpers/line-client.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';
import { Webhooks } from '../../src/hooks/webhooks.js';
import { HookClient } from '../../src/hooks/client.js';

let backend: BackendProcess;
let broker: TestBroker;

beforeAll(async () => {
  backend = await startBackend();
  broker = await startTestBroker({ hookUrl: backend.url, hooks: 'events', webhookRetryMs: 10, webhookBatch: 3, hookBreakerFailures: 1000 });
});
afterAll(async () => {
  await broker?.close();
  await backend?.stop();
});

async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('webhooks', () => {
  it('every event arrives at least once through a backend that fails half its requests', async () => {
    await backend.script({ events: { failEvery: 2 } });
    const webhooks = broker.hooks!.webhooks!;
    const a = await TestClient.connect(`${broker.url}?name=ann`);
    await a.request({ op: 'sub', topic: 'room/1', presence: true });
    const b = await TestClient.connect(`${broker.url}/room/1`);
    await a.request({ op: 'rename', name: 'anna' });
    await b.request({ op: 'unsub', topic: 'room/1' });
    a.send({ op: 'quit' });
    await a.closed;
    const line = await LineClient.connect(broker.tcpPort);
    line.send('quit');
    await line.closed;
    b.ws.close();
    await b.closed;
    await until(() => webhooks.stats.queued >= 14 && webhooks.pending === 0);
    const calls = await backend.calls();
    const received = calls.filter((c) => c.kind === 'events').flatMap((c, i) => (i % 2 === 1 ? [] : c.body.events)) as { id: string; type: string; [k: string]: any }[];
    // Every other call failed (500): the batches answered 2xx carry every event, each id once.
    expect(calls.filter((c) => c.kind === 'events').length).toBeGreaterThan(webhooks.stats.retries);
    expect(webhooks.stats.retries).toBeGreaterThan(0);
    const ids = received.map((e) => e.id);
    expect(new Set(ids).size).toBe(webhooks.stats.queued);
    expect(webhooks.stats.delivered).toBe(webhooks.stats.queued);
    const of = (name: string) => received.filter((e) => e.client?.name === name || e.client?.id === b.hello.client.id && name === 'b').map((e) => e.type + (e.topic ? ` ${e.topic}` : ''));
    expect(of('ann')).toEqual(['client.connected', 'presence.join room/1']);
    expect(received.map((e) => e.type + (e.topic ? ` ${e.topic}` : ''))).toEqual(
      expect.arrayContaining(['topic.occupied room/1', 'presence.rename room/1', 'presence.leave room/1', 'topic.vacated room/1', 'topic.occupied chat', 'topic.vacated chat']),
    );
    const rename = received.find((e) => e.type === 'presence.rename')!;
    expect(rename).toMatchObject({ old: 'ann', client: { name: 'anna' } });
    const quit = received.find((e) => e.type === 'client.disconnected' && e.client.name === 'anna')!;
    expect(quit).toMatchObject({ cause: 'leave', code: 1000, reason: 'quit' });
    // Occupied once (first subscriber in), vacated once (last out), though two clients held room/1.
    expect(received.filter((e) => e.type === 'topic.occupied' && e.topic === 'room/1')).toHaveLength(1);
    expect(received.filter((e) => e.type === 'topic.vacated' && e.topic === 'room/1')).toHaveLength(1);
  });

  it('overflow of the bounded queue is counted, never silent', async () => {
    const client = new HookClient({ baseUrl: 'http://127.0.0.1:9', timeoutMs: 100, maxInflight: 1, breakerFailures: 1000, breakerMs: 10 });
    const warned: unknown[] = [];
    const log = { warn: (o: unknown) => warned.push(o) } as never;
    const hooks = new Webhooks(client, { maxQueue: 5, batch: 2, retryMs: 1000 }, log);
    for (let i = 0; i < 12; i++) hooks.emit('topic.occupied', { topic: `t/${i}` });
    expect(hooks.pending).toBe(5);
    expect(hooks.stats.dropped).toBe(7);
    expect(warned.some((w) => (w as { dropped?: number }).dropped === 7 || (w as { dropped?: number }).dropped === 1)).toBe(true);
    hooks.close();
    client.close();
  });
});

// Graceful shutdown: stop accepting, flush what was queued, close every connection with 1001, exit 0.
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { startTestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';
import { spawnBroker } from './helpers/child-broker.js';

describe('graceful shutdown', () => {
  it('delivers every queued message, then closes each client with 1001', async () => {
    const broker = await startTestBroker();
    const subs = await Promise.all([1, 2, 3].map(() => TestClient.connect(`${broker.url}/news`)));
    for (let i = 1; i <= 200; i++) broker.hub.publish('news', i);
    const closing = broker.close(); // same turn: the 200 messages are still in the mailboxes
    const results = await Promise.all(subs.map((s) => s.closed));
    await closing;
    for (const [i, r] of results.entries()) {
      expect(r.code).toBe(1001);
      expect(subs[i]!.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(Array.from({ length: 200 }, (_, k) => k + 1));
    }
    expect(broker.supervisor.getSnapshot().status).toBe('done');
  });

  it('SIGTERM closes every client with 1001 and the process exits 0', async () => {
    const { child, port } = await spawnBroker([]);
    const clients = await Promise.all([1, 2, 3].map(() => TestClient.connect(`ws://127.0.0.1:${port}/ws/t`)));
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const codes = (await Promise.all(clients.map((c) => c.closed))).map((r) => r.code);
    expect(codes).toEqual([1001, 1001, 1001]);
    const [code] = await exited;
    expect(code).toBe(0);
  });
});

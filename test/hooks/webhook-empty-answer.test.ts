// A webhook batch leaves the queue once the endpoint answers 2xx (docs/integration.md, "Webhooks"): an endpoint that
// answers 204 No Content, or 200 with an empty or plain-text body, took the batch. It was read as a malformed hook
// answer (not a JSON object): the same batch was sent again and again, forever, and counted as backend failures.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';

let backend: Server;
let broker: TestBroker;
const batches: { status: number; ids: string[] }[] = [];
let answer: { status: number; body: string } = { status: 204, body: '' };

beforeAll(async () => {
  backend = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: { id: string }[] };
      batches.push({ status: answer.status, ids: body.events.map((e) => e.id) });
      res.statusCode = answer.status;
      res.end(answer.body);
    });
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const port = (backend.address() as AddressInfo).port;
  broker = await startTestBroker({ hookUrl: `http://127.0.0.1:${port}`, hooks: 'events', webhookRetryMs: 20 });
});
afterAll(async () => {
  await broker?.close();
  backend?.closeAllConnections();
  await new Promise((r) => backend?.close(r));
});

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('webhook endpoints that answer 2xx without a JSON body', () => {
  for (const [status, body] of [[204, ''], [200, ''], [200, 'OK']] as const) {
    it(`${status} ${JSON.stringify(body)}: the batch is delivered once`, async () => {
      answer = { status, body };
      batches.length = 0;
      const webhooks = broker.hooks!.webhooks!;
      const delivered = webhooks.stats.delivered;
      const c = await TestClient.connect(broker.url);
      await until(() => webhooks.stats.delivered > delivered && webhooks.pending === 0);
      // Time for a retry to show, were the batch still queued.
      await new Promise((r) => setTimeout(r, 150));
      const ids = batches.flatMap((b) => b.ids);
      expect(new Set(ids).size).toBe(ids.length);
      expect(webhooks.pending).toBe(0);
      c.close();
      await until(() => webhooks.pending === 0);
    });
  }
});

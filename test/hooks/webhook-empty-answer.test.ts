// A webhook batch leaves the queue once the endpoint answers 2xx (docs/integration.md, "Webhooks"): an endpoint that
// answers 204 No Content, or 200 with an empty or plain-text body, took the batch. It was read as a malformed hook
// answer (not a JSON object): the same batch was sent again and again, forever, and counted as backend failures.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { until } from '../helpers/waits.js';

let backend: Server;
let broker: TestBroker;
const batches: { status: number; ids: string[]; types: string[] }[] = [];
let answer: { status: number; body: string } = { status: 204, body: '' };

beforeAll(async () => {
  backend = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: { id: string; type: string }[] };
      batches.push({ status: answer.status, ids: body.events.map((e) => e.id), types: body.events.map((e) => e.type) });
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

describe('webhook endpoints that answer 2xx without a JSON body', () => {
  for (const [status, body] of [[204, ''], [200, ''], [200, 'OK']] as const) {
    it(`${status} ${JSON.stringify(body)}: the batch is delivered once`, async () => {
      answer = { status, body };
      batches.length = 0;
      const webhooks = broker.hooks!.webhooks!;
      const retries = webhooks.stats.retries;
      const c = await TestClient.connect(broker.url);
      await until(() => batches.length > 0, 'the connect batch at the endpoint');
      // The disconnect is sent behind the connect batch (one batch in flight, in order): were that batch read as
      // failed, the next batch to reach the endpoint would be its retry, carrying the same ids again.
      c.close();
      await until(() => batches.length > 1, 'a second batch at the endpoint');
      expect(batches[0]!.types).toContain('client.connected');
      expect(batches[1]!.types).toContain('client.disconnected');
      const ids = batches.flatMap((b) => b.ids);
      expect(new Set(ids).size).toBe(ids.length);
      await until(() => webhooks.pending === 0, 'the disconnect batch taken');
      expect(webhooks.stats.retries).toBe(retries);
    });
  }
});

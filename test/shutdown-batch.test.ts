// POST /api/publish/batch whose body finishes arriving after shutdown began is refused 503, as /api/publish is: it
// answered 200 with published results, for messages its subscribers (already sealed for 1001) never got (found by a
// review helper).
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { startTestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';
import { until } from './helpers/waits.js';

function slowPost(port: number, path: string, body: string): { finish: () => void; answer: Promise<{ status: number; body: string }> } {
  const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
  });
  const half = Math.floor(body.length / 2);
  req.write(body.slice(0, half));
  return { finish: () => req.end(body.slice(half)), answer };
}

describe('publishes whose body arrives during shutdown', () => {
  it('batch publish is refused 503 like a single publish, not answered 200 for messages nobody gets', async () => {
    const broker = await startTestBroker({ closeTimeoutMs: 3000 });
    const sub = await TestClient.connect(`${broker.url}/news`);
    sub.ws.pause(); // holds the drain open: it does not answer the close handshake
    // The requests the broker's HTTP server parsed (their handlers then wait for the bodies).
    const arrived: string[] = [];
    broker.http.on('request', (req) => arrived.push(req.url ?? ''));
    const single = slowPost(broker.port, '/api/publish', JSON.stringify({ topic: 'news', data: 'single' }));
    const batch = slowPost(broker.port, '/api/publish/batch', JSON.stringify({ messages: [{ topic: 'news', data: 'batched' }] }));
    await until(() => arrived.length === 2, "both requests' headers at the broker");
    const closing = broker.close();
    await until(() => broker.supervisor.getSnapshot().value !== 'running', 'the broker draining');
    single.finish();
    batch.finish();
    const [s, b] = await Promise.all([single.answer, batch.answer]);
    await closing;
    sub.ws.resume();
    await sub.closed;
    // The subscriber, subscribed before shutdown, never got it:
    expect(sub.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual([]);
    expect(s.status).toBe(503);
    expect(b).toMatchObject({ status: 503 });
  }, 20_000);
});

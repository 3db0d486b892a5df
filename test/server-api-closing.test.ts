// The server API's client commands to a client that is already leaving (its close handshake pending) answer 404: they
// answered 200 "subscribed" / "disconnected with 4200" for a client that received nothing more and was closed with
// another code (found by a review helper).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';

let broker: TestBroker;
const api = async (path: string, body: unknown) => {
  const res = await fetch(`${broker.httpUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
};

beforeAll(async () => {
  broker = await startTestBroker({ closeTimeoutMs: 2000 });
});
afterAll(() => broker?.close());

describe('server API commands to a client that is leaving', () => {
  it('a client already closing is not subscribed or disconnected again with a 200', async () => {
    const c = await TestClient.connect(`${broker.url}?name=leaving`);
    c.ws.pause(); // it does not answer the close handshake at once: it is closing for up to closeTimeoutMs
    expect((await api('/api/clients/disconnect', { client: 'leaving', code: 4100, reason: 'first' })).status).toBe(200);
    const sub = await api('/api/clients/subscribe', { client: 'leaving', topic: 'alarm/#' });
    const again = await api('/api/clients/disconnect', { client: 'leaving', code: 4200, reason: 'second' });
    const published = await api('/api/publish', { topic: 'alarm/1', data: 'hot' });
    c.ws.resume();
    const closed = await c.closed;
    const msgs = c.all.filter((f) => f.op === 'msg');
    expect({ closed, msgs, published: published.body.delivered }).toEqual({ closed: { code: 4100, reason: 'first' }, msgs: [], published: 0 });
    // What the API said: "subscribed", and "disconnected with 4200" — neither happened.
    expect({ sub: sub.status, again: again.status, againBody: again.body }).toMatchObject({ sub: 404, again: 404 });
  }, 20_000);
});

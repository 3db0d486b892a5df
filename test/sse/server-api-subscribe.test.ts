// A stream subscribed or unsubscribed by the server API (POST /api/clients/subscribe, /unsubscribe) carries that
// change in its cursor, as a POSTed sub or unsub does (docs/sse.md, Resume: "the broker then subscribes the new stream
// to the cursor's filters"). The stream's wire looked at its filters only after a POST or an ack: a server-side
// subscription never reached the cursor (its messages' ids named positions on a filter the cursor lacked), so a
// reconnect with Last-Event-ID silently dropped it and lost what was published meanwhile; a server-side unsubscribe
// stayed in the cursor and came back on reconnect.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { SseClient } from '../helpers/sse-client.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.close());

async function api(path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(broker.httpUrl + path, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const msgs = (c: SseClient) => c.all.filter((e) => e.frame?.op === 'msg').map((e) => `${e.frame!.topic}:${e.frame!.data}`);

describe('SSE stream subscribed through the server API', () => {
  it('a reconnect with Last-Event-ID keeps the server-side subscription and misses nothing of it', async () => {
    const sse = await SseClient.open(broker.httpUrl, '/sse?topics=own/1&name=panel');
    expect(await api('/api/clients/subscribe', { client: 'panel', topic: 'alarm/#' })).toMatchObject({ status: 200 });
    await waitFor(() => sse.lastEventId.includes('alarm/#'));
    await api('/api/publish', { topic: 'alarm/a', data: 1 });
    await sse.frame((f) => f.op === 'msg' && f.data === 1);
    const id = sse.lastEventId;
    sse.close();
    await sse.ended;
    await waitFor(() => broker.hub.sessionCount === 0);
    await api('/api/publish', { topic: 'alarm/a', data: 2 });
    const back = await SseClient.open(broker.httpUrl, '/sse?name=panel', { 'Last-Event-ID': id });
    await back.frame((f) => f.op === 'msg' && f.data === 2);
    await api('/api/publish', { topic: 'alarm/b', data: 3 });
    await back.frame((f) => f.op === 'msg' && f.data === 3);
    expect(msgs(back)).toEqual(['alarm/a:2', 'alarm/b:3']);
    expect(back.all.some((e) => e.event === 'notRecovered')).toBe(false);
    back.close();
  });

  it('a server-side unsubscribe leaves the cursor: a reconnect does not bring the filter back', async () => {
    const sse = await SseClient.open(broker.httpUrl, '/sse?topics=keep,drop&name=viewer');
    expect(await api('/api/clients/unsubscribe', { client: 'viewer', topic: 'drop' })).toMatchObject({ status: 200 });
    await waitFor(() => !sse.lastEventId.includes('drop'));
    const id = sse.lastEventId;
    sse.close();
    await sse.ended;
    await waitFor(() => broker.hub.sessionCount === 0);
    const back = await SseClient.open(broker.httpUrl, '/sse?name=viewer', { 'Last-Event-ID': id });
    await api('/api/publish', { topic: 'drop', data: 'no' });
    await api('/api/publish', { topic: 'keep', data: 'yes' });
    await back.frame((f) => f.op === 'msg' && f.data === 'yes');
    expect(msgs(back)).toEqual(['keep:yes']);
    back.close();
  });
});

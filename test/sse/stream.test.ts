// Server-Sent Events over real sockets: the stream, POSTed requests, the cursor ids and Last-Event-ID resume
// (exact, and notRecovered first when something was missed), bad input (docs/sse.md).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { SseClient } from '../helpers/sse-client.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ historySize: 5 });
});
afterAll(() => broker.close());

const seqs = (c: SseClient, topic: string) => c.all.filter((e) => e.frame?.op === 'msg' && e.frame.topic === topic).map((e) => e.frame!.seq as number);

describe('SSE stream', () => {
  it('streams hello and messages for its filters; POSTs publish, sub, who; every message event carries the cursor', async () => {
    const sse = await SseClient.open(broker.httpUrl, '/sse?topics=room/1,feed/%23&name=sam');
    expect(sse.stream).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(sse.hello).toMatchObject({ op: 'hello', client: { name: 'sam', transport: 'sse' } });
    const ws = await TestClient.connect(`${broker.url}?topics=room/1`);

    await ws.request({ op: 'pub', topic: 'room/1', data: 'from ws' });
    const m1 = await sse.next((e) => e.frame?.op === 'msg');
    expect(m1.frame).toMatchObject({ topic: 'room/1', seq: 1, data: 'from ws' });
    const idAfterFirst = m1.lastEventId;
    expect(idAfterFirst).toMatch(/^1;/);
    await ws.request({ op: 'pub', topic: 'feed/a/b', data: 2 });
    const m2 = await sse.next((e) => e.frame?.op === 'msg');
    expect(m2.frame).toMatchObject({ topic: 'feed/a/b', seq: 1 });
    expect(m2.lastEventId).not.toBe(idAfterFirst);

    // Requests over POST: replies come on the stream, in order.
    expect(await sse.send({ op: 'pub', topic: 'room/1', data: 'from sse', id: 1 })).toEqual({ status: 202, body: { accepted: 1 } });
    expect(await sse.frame((f) => f.op === 'ack' && f.id === 1)).toMatchObject({ seq: 2 });
    expect(await ws.next((f) => f.op === 'msg' && f.data === 'from sse')).toMatchObject({ from: { name: 'sam' } });
    await sse.send([{ op: 'who', topic: 'room/1', id: 2 }, { op: 'rename', name: 'samantha', id: 3 }]);
    const who = await sse.frame((f) => f.id === 2);
    expect(who.clients).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'sam', transport: 'sse', state: 'online' })]));
    expect(await sse.frame((f) => f.id === 3)).toMatchObject({ op: 'ack', name: 'samantha' });

    // A notification sub (no ack) still moves the cursor: an id-only event carries the new filter.
    const before = sse.lastEventId;
    await sse.send({ op: 'sub', topic: 'later' });
    await waitFor(() => sse.lastEventId !== before);
    expect(sse.lastEventId).toContain('later');
    sse.close();
    ws.close();
  });

  it('heartbeat comments keep the stream alive; it is listed with transport sse in /api/clients', async () => {
    const b = await startTestBroker({ heartbeatMs: 50 });
    try {
      const sse = await SseClient.open(b.httpUrl, '/sse?topics=x');
      await waitFor(() => sse.comments.includes('heartbeat'));
      const clients = (await (await fetch(`${b.httpUrl}/api/clients`)).json()) as { clients: { transport: string; subscriptions: string[] }[] };
      expect(clients.clients).toEqual([expect.objectContaining({ transport: 'sse', subscriptions: ['x'] })]);
      sse.close();
    } finally {
      await b.close();
    }
  });

  it('Last-Event-ID resumes exactly: the filters (those POSTed too) and every message missed, once, in order', async () => {
    const ws = await TestClient.connect(broker.url);
    const sse = await SseClient.open(broker.httpUrl, '/sse?topics=r/a,r/w/%2B');
    await sse.send({ op: 'sub', topic: 'r/posted', id: 'p' });
    await sse.frame((f) => f.id === 'p');
    for (const t of ['r/a', 'r/w/1', 'r/w/2', 'r/posted']) await ws.request({ op: 'pub', topic: t, data: `${t} live` });
    await sse.frame((f) => f.op === 'msg' && f.topic === 'r/posted');
    const cursor = sse.lastEventId;
    sse.close();
    await sse.ended;
    // Missed while away: two on r/a, one on r/w/1, one on a new topic of the wildcard, one on the POSTed filter.
    for (const t of ['r/a', 'r/a', 'r/w/1', 'r/w/3', 'r/posted']) await ws.request({ op: 'pub', topic: t, data: `${t} missed` });

    const again = await SseClient.open(broker.httpUrl, '/sse?topics=ignored', { 'last-event-id': cursor });
    await ws.request({ op: 'pub', topic: 'r/a', data: 'after' });
    await again.frame((f) => f.op === 'msg' && f.data === 'after');
    expect(again.all.filter((e) => e.event === 'notRecovered')).toEqual([]);
    expect(seqs(again, 'r/a')).toEqual([2, 3, 4]);
    expect(seqs(again, 'r/w/1')).toEqual([2]);
    expect(seqs(again, 'r/w/2')).toEqual([]);
    expect(seqs(again, 'r/w/3')).toEqual([1]);
    expect(seqs(again, 'r/posted')).toEqual([2]);
    expect(seqs(again, 'ignored')).toEqual([]);
    again.close();
    ws.close();
  });

  it('a stream that missed more than the broker holds gets notRecovered first, then what is held, and its position stays true', async () => {
    const ws = await TestClient.connect(broker.url);
    const sse = await SseClient.open(broker.httpUrl, '/sse?topics=t/trim');
    await ws.request({ op: 'pub', topic: 't/trim', data: 1 });
    await sse.frame((f) => f.op === 'msg');
    const cursor = sse.lastEventId;
    sse.close();
    await sse.ended;
    for (let i = 2; i <= 10; i++) await ws.request({ op: 'pub', topic: 't/trim', data: i }); // history keeps 5

    const again = await SseClient.open(broker.httpUrl, '/sse', { 'last-event-id': cursor });
    const verdict = await again.next((e) => e.event === 'notRecovered');
    expect(JSON.parse(verdict.data)).toMatchObject({ filter: 't/trim', reason: 'history_trimmed', missed: { 't/trim': 'history_trimmed' }, positions: { 't/trim': { seq: 10 } } });
    // Then what the broker still holds of it (6–10), after the verdict; the cursor moves past what it was given.
    await again.frame((f) => f.op === 'msg' && f.seq === 10);
    expect(seqs(again, 't/trim')).toEqual([6, 7, 8, 9, 10]);
    expect(again.all.findIndex((e) => e.event === 'notRecovered')).toBeLessThan(again.all.findIndex((e) => e.frame?.op === 'msg'));
    await until(() => again.lastEventId !== cursor && again.lastEventId.endsWith('!a'), 'the cursor after the replay');
    const caughtUp = again.lastEventId;
    again.close();
    await again.ended;
    // The old cursor again: the same verdict, the same replay (the position never claimed what it was not given).
    const third = await SseClient.open(broker.httpUrl, '/sse', { 'last-event-id': cursor });
    expect(JSON.parse((await third.next((e) => e.event === 'notRecovered')).data)).toMatchObject({ reason: 'history_trimmed' });
    await third.frame((f) => f.op === 'msg' && f.seq === 10);
    // Live messages follow: no duplicate, no gap.
    await ws.request({ op: 'pub', topic: 't/trim', data: 11 });
    expect(await third.frame((f) => f.op === 'msg' && f.seq === 11)).toMatchObject({ data: 11 });
    expect(seqs(third, 't/trim')).toEqual([6, 7, 8, 9, 10, 11]);
    third.close();
    await third.ended;
    // From the cursor after the replay a resume is exact again.
    const fourth = await SseClient.open(broker.httpUrl, '/sse', { 'last-event-id': caughtUp });
    await ws.request({ op: 'pub', topic: 't/trim', data: 12 });
    expect(await fourth.frame((f) => f.op === 'msg' && f.seq === 12)).toMatchObject({ seq: 12 });
    expect(seqs(fourth, 't/trim')).toEqual([11, 12]);
    expect(fourth.all.filter((e) => e.event === 'notRecovered')).toEqual([]);
    fourth.close();
    ws.close();
  });

  it('a Last-Event-ID that is not a cursor: notRecovered (bad_cursor), subscribed afresh from the URL', async () => {
    const sse = await SseClient.open(broker.httpUrl, '/sse?topics=fresh', { 'last-event-id': 'garbage;%%' });
    expect(JSON.parse((await sse.next((e) => e.event === 'notRecovered')).data)).toMatchObject({ filter: null, reason: 'bad_cursor' });
    await broker.hub.publish('fresh', 'ok');
    expect(await sse.frame((f) => f.op === 'msg')).toMatchObject({ topic: 'fresh', data: 'ok' });
    sse.close();
  });

  it('a cursor no stream of this broker could write (a filter twice, more filters than --max-subscriptions): bad_cursor, at no great cost', async () => {
    // 1,000 copies of `#`, each resumed with a map of 200–250 positions, held the loop ~450 ms for one request.
    const positions = Array.from({ length: 200 }, (_, i) => `t${i.toString(36)}!.1!1`).join(',');
    const copies = `1;${broker.hub.life};;${Array(1000).fill('#').join(',')};${positions}`;
    const tooMany = `1;${broker.hub.life};;${Array.from({ length: broker.config.maxSubscriptions + 1 }, (_, i) => `f${i}`).join(',')};`;
    for (const id of [copies, tooMany]) {
      expect(id.length).toBeLessThanOrEqual(4096);
      const sse = await SseClient.open(broker.httpUrl, '/sse?topics=fresh2', { 'last-event-id': id });
      expect(JSON.parse((await sse.next((e) => e.event === 'notRecovered')).data)).toMatchObject({ filter: null, reason: 'bad_cursor' });
      await broker.hub.publish('fresh2', 'ok');
      expect(await sse.frame((f) => f.op === 'msg' && f.topic === 'fresh2')).toMatchObject({ data: 'ok' });
      sse.close();
    }
  });

  it('bad input: not JSON, unknown op, bad topic are errors on the stream (it stays); oversize body 413; unknown stream 404', async () => {
    const sse = await SseClient.open(broker.httpUrl, '/sse');
    expect((await sse.send('{not json')).status).toBe(202);
    expect(await sse.frame((f) => f.op === 'error')).toMatchObject({ code: 'bad_frame' });
    await sse.send({ op: 'fly', id: 9 });
    expect(await sse.frame((f) => f.op === 'error')).toMatchObject({ code: 'unknown_op', id: 9 });
    await sse.send({ op: 'sub', topic: 'a/#/b', id: 10 });
    expect(await sse.frame((f) => f.op === 'error')).toMatchObject({ code: 'bad_topic', id: 10 });
    const big = await sse.send({ op: 'pub', topic: 'x', data: 'y'.repeat(broker.config.maxPayload) });
    expect(big).toMatchObject({ status: 413, body: { error: 'too_large' } });
    const unknown = await fetch(`${broker.httpUrl}/sse?stream=nope`, { method: 'POST', body: '{"op":"ping"}' });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: 'not_found' });
    // Still served.
    await sse.send({ op: 'ping', id: 11 });
    expect(await sse.frame((f) => f.op === 'pong')).toEqual({ op: 'pong', id: 11 });
    sse.close();
  });

  it('a POSTed frame of invalid UTF-8 is bad_frame, and nothing altered is published; the frames around it are served', async () => {
    // It was decoded with U+FFFD in place of the bad bytes and published as accepted (found by a review helper).
    const sse = await SseClient.open(broker.httpUrl, '/sse');
    const ws = await TestClient.connect(`${broker.url}?topics=utf8/t`);
    const body = Buffer.concat([
      Buffer.from('{"op":"pub","topic":"utf8/t","id":1,"data":"caf'),
      Buffer.from([0xc3]),
      Buffer.from('"}\r\n{"op":"pub","topic":"utf8/t","id":2,"data":"café"}'),
    ]);
    const res = await fetch(broker.httpUrl + sse.post, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    expect([res.status, await res.json()]).toEqual([202, { accepted: 2 }]);
    expect(await sse.frame((f) => f.op === 'error')).toMatchObject({ code: 'bad_frame' });
    expect(await sse.frame((f) => f.id === 2)).toMatchObject({ op: 'ack', seq: 1 });
    await ws.next((f) => f.op === 'msg');
    expect(ws.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['café']);
    sse.close();
    ws.close();
  });

  it('a page of another origin is refused (403) on GET and POST', async () => {
    const evil = { origin: 'http://evil.example' };
    expect(await SseClient.refusal(broker.httpUrl, '/sse', evil)).toMatchObject({ status: 403, body: { error: 'forbidden' } });
    const sse = await SseClient.open(broker.httpUrl, '/sse');
    expect(await sse.send({ op: 'pub', topic: 'x', data: 1 }, evil)).toMatchObject({ status: 403 });
    sse.close();
  });

  it('quit over POST ends the stream with a close event (1000)', async () => {
    const sse = await SseClient.open(broker.httpUrl, '/sse');
    await sse.send({ op: 'quit' });
    expect(JSON.parse((await sse.next((e) => e.event === 'close')).data)).toEqual({ code: 1000, reason: 'quit' });
    await sse.ended;
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

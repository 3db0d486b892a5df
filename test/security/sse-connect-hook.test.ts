// The connect hook at the SSE door, as at every other transport's: GET /sse opened a stream without asking it, so a
// client the backend refused on /ws connected over SSE instead, and an SSE client kept its token's acl, not the
// narrower one the hook gives.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { SseClient } from '../helpers/sse-client.js';
import { statusOf } from './upgrade.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';

const SECRET = 'review-sse-hook-secret';
const token = (sub: string, acl?: object) => new SignJWT(acl ? { acl } : {}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

let backend: BackendProcess;
let open: TestBroker;
let authed: TestBroker;
beforeAll(async () => {
  backend = await startBackend();
  open = await startTestBroker({ hookUrl: backend.url, hooks: 'connect' });
  authed = await startTestBroker({ authSecret: SECRET, hookUrl: backend.url, hooks: 'connect' });
});
afterAll(async () => {
  await open?.close();
  await authed?.close();
  await backend?.stop();
});

describe('GET /sse and the connect hook', () => {
  it('a connection the connect hook refuses on /ws is refused on /sse too', async () => {
    await backend.script({ connect: { answer: { allow: false, reason: 'no session cookie', status: 401 } } });
    expect(await statusOf(open.url)).toBe(401);
    const r = await SseClient.refusal(open.httpUrl, '/sse?topics=%23');
    expect(r.status).toBe(401);
  });

  it("an SSE client is held to the acl the connect hook gives, not its token's wider one", async () => {
    await backend.script({ connect: { answer: { acl: { sub: ['chat'], pub: [] } } } });
    const t = await token('ada');
    const c = await SseClient.open(authed.httpUrl, `/sse?token=${t}`);
    expect((await c.send({ op: 'sub', id: 1, topic: '#' }, { Authorization: `Bearer ${t}` })).status).toBe(202);
    const reply = await c.frame((f) => f.id === 1);
    c.close();
    expect(reply).toMatchObject({ op: 'error', code: 'forbidden' });
  });

  it("a resuming stream's Last-Event-ID filters are what the hook is shown as asked for; answered with topics of its own, those are subscribed", async () => {
    // A cursor the client wrote itself, naming a topic it may not ask for (found by a review helper: the cursor's
    // filters were subscribed without the hook seeing them).
    await backend.script({ connect: { answer: { topics: ['chat'] } } });
    const cursor = `1;${open.hub.life};;secret/x;`;
    const c = await SseClient.open(open.httpUrl, '/sse', { 'last-event-id': cursor });
    const call = (await backend.calls()).filter((x) => x.kind === 'connect').at(-1)!;
    expect(call.body.topics).toEqual(['secret/x']);
    await fetch(`${open.httpUrl}/api/publish`, { method: 'POST', body: JSON.stringify({ topic: 'secret/x', data: 'not for you' }) });
    await fetch(`${open.httpUrl}/api/publish`, { method: 'POST', body: JSON.stringify({ topic: 'chat', data: 'hello' }) });
    await c.frame((f) => f.op === 'msg' && f.topic === 'chat');
    // Said before any message: the cursor was not used.
    const said = c.all.findIndex((e) => e.event === 'notRecovered');
    expect(said).toBeGreaterThan(-1);
    expect(said).toBeLessThan(c.all.findIndex((e) => e.frame?.op === 'msg'));
    expect(JSON.parse(c.all[said]!.data)).toMatchObject({ filter: null, reason: 'subscriptions_replaced' });
    expect(c.all.filter((e) => e.frame?.op === 'msg').map((e) => e.frame!.topic)).toEqual(['chat']);
    c.close();
  });
});

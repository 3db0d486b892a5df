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
});

// With request hooks on, a token refresh (`auth`) takes its turn among the hooked requests: what the client sends
// after its `auth` is served under the grant it brings, whatever the hook latency, and nothing overtakes it.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';

const SECRET = 'auth-gate-secret';
let backend: BackendProcess;
let broker: TestBroker;

const token = (pub: string[]) =>
  new SignJWT({ acl: { pub, sub: ['#'] } }).setProtectedHeader({ alg: 'HS256' }).setSubject('ada').setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

beforeAll(async () => {
  backend = await startBackend();
  broker = await startTestBroker({ authSecret: SECRET, hookUrl: backend.url, hooks: 'publish' });
});
afterAll(async () => {
  await broker?.close();
  await backend?.stop();
});

it('requests after an auth are served under the new grant, in order, through slow publish hooks', async () => {
  await backend.script({ publish: { randomDelayMs: 40 } });
  const c = await TestClient.connect(`${broker.url}?token=${await token(['a/#'])}`);
  await c.request({ op: 'sub', topic: '#' });
  c.send({ op: 'pub', id: 1, topic: 'a/1', data: 'before' });
  c.send({ op: 'pub', id: 2, topic: 'b/1', data: 'refused' });
  c.send({ op: 'auth', id: 3, token: await token(['a/#', 'b/#']) });
  c.send({ op: 'pub', id: 4, topic: 'b/1', data: 'after' });
  const replies = [];
  for (const id of [1, 2, 3, 4]) replies.push(await c.next((f) => f.id === id));
  expect(replies.map((r) => (r.op === 'error' ? r.code : r.op))).toEqual(['ack', 'forbidden', 'ack', 'ack']);
  const order = c.all.filter((f) => f.op === 'ack' || f.op === 'error').map((f) => f.id);
  expect(order.slice(-4)).toEqual([1, 2, 3, 4]);
  expect(c.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['before', 'after']);
  c.ws.close();
});

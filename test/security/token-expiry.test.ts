// Token expiry and refresh, the broker's side of /work/wt/CONTRACT-auth.md (docs/protocol.md, "Token expiry and
// refresh"; issue 19, item 7). Before: a token that expired while connected kept working for as long as the
// connection lasted. Real sockets, tokens that expire within 1-2 s, --token-grace-ms 300.
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient, type Frame } from '../helpers/client.js';
import { LineClient } from '../helpers/line-client.js';
import { requireRedis, startNode, TestRedis } from '../cluster/redis.js';

const SECRET = 'token-expiry-secret-long-enough-for-hs256';
const GRACE_MS = 300;
const sign = (claims: Record<string, unknown>, exp?: number) => {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' });
  if (exp !== undefined) jwt.setExpirationTime(exp);
  return jwt.sign(new TextEncoder().encode(SECRET));
};
const nowS = () => Math.floor(Date.now() / 1000);
/** `exp` 2 s ahead (whole seconds): valid at connect, expired 1-2 s later. */
const soon = () => nowS() + 2;

let broker: TestBroker;
let plain: TestBroker;
const open: { close(): void }[] = [];
const keep = <T extends { close(): void }>(c: T): T => (open.push(c), c);
beforeAll(async () => {
  broker = await startTestBroker({ authSecret: SECRET, tokenGraceMs: GRACE_MS });
  plain = await startTestBroker();
});
afterAll(async () => {
  for (const c of open) c.close();
  await broker.close();
  await plain.close();
});

const isExpiry = (f: Frame) => f.op === 'error' && f.code === 'token_expired';

describe('token expiry and refresh', { concurrent: true }, () => {
  it('an expiring connection is told, then closed 4003 after the grace unless it sent a fresh token; its watchers hear leave', async () => {
    const watcher = keep(await TestClient.connect(`${broker.url}?token=${await sign({ sub: 'watcher' })}`));
    await watcher.request({ op: 'sub', topic: 'room/x', presence: true });
    const lapses = keep(await TestClient.connect(`${broker.url}/room/x?token=${await sign({ sub: 'lapses' }, soon())}`));
    const stays = keep(await TestClient.connect(`${broker.url}/room/x?token=${await sign({ sub: 'stays' }, soon())}`));
    // Its token expires a second after the others': its close (at its expiry and the grace, on the same clock as
    // theirs) comes after `stays` would have been closed, had its refresh not counted.
    const tcp = keep(await LineClient.connect(broker.tcpPort, await sign({ sub: 'liner' }, soon() + 1)));

    const told = await lapses.next(isExpiry, 4000);
    expect(told).not.toHaveProperty('id');
    expect(told.message).toBe(`the token expired; send {"op":"auth","token":…} within ${GRACE_MS / 1000} s`);

    // `stays` answers with a fresh token: acknowledged with the new exp, and the connection goes on.
    await stays.next(isExpiry, 4000);
    const exp = nowS() + 3600;
    expect(await stays.request({ op: 'auth', token: await sign({ sub: 'stays' }, exp) })).toMatchObject({ op: 'ack', exp });

    expect(await lapses.closed).toEqual({ code: 4003, reason: 'token expired' });
    expect(await watcher.next((f) => f.op === 'event' && f.client.name === 'lapses' && f.event !== 'join')).toMatchObject({ event: 'leave', topic: 'room/x' });
    // The TCP client is told in a JSON line, then `bye`.
    expect(JSON.parse(await tcp.next((l) => l.includes('token_expired'), 4000))).toMatchObject({ op: 'error', code: 'token_expired' });
    await tcp.next('bye: token expired (4003)');
    await tcp.closed;
    // Past the grace, `stays` is still served.
    expect(stays.ws.readyState).toBe(WebSocket.OPEN);
    expect(await stays.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(await stays.request({ op: 'pub', topic: 'room/x', data: 1 })).toMatchObject({ op: 'ack' });
  });

  it('a refused refresh leaves the connection and its old deadline: unauthorized, forbidden for another name, bad_frame without auth', async () => {
    const c = keep(await TestClient.connect(`${broker.url}?token=${await sign({ sub: 'refused' }, nowS() + 600)}`));
    expect(await c.request({ op: 'auth', token: 'not.a.jwt' })).toMatchObject({ op: 'error', code: 'unauthorized' });
    expect(await c.request({ op: 'auth', token: await sign({ sub: 'refused' }, nowS() - 10) })).toMatchObject({ op: 'error', code: 'unauthorized', message: 'token expired' });
    expect(await c.request({ op: 'auth', token: await sign({ sub: 'someone-else' }) })).toMatchObject({ op: 'error', code: 'forbidden', message: 'a refreshed token must name the same client' });
    expect(await c.request({ op: 'auth', token: await sign({ sub: 'refused', acl: null }) })).toMatchObject({ op: 'error', code: 'unauthorized' });
    for (const token of [undefined, '', 42]) expect(await c.request({ op: 'auth', token })).toMatchObject({ op: 'error', code: 'bad_frame' });
    expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    // A token without exp lasts: acknowledged with exp null.
    expect(await c.request({ op: 'auth', token: await sign({ sub: 'refused' }) })).toMatchObject({ op: 'ack', exp: null });

    const off = keep(await TestClient.connect(plain.url));
    expect(await off.request({ op: 'auth', token: await sign({ sub: 'x' }) })).toMatchObject({ op: 'error', code: 'bad_frame', message: 'auth is not enabled on this broker' });
  });

  it('over TCP, a JSON auth line after the first one refreshes', async () => {
    const tcp = keep(await LineClient.connect(broker.tcpPort, await sign({ sub: 'tcp-refresh' }, soon())));
    // A client whose token expires a second later and is never refreshed: its close comes after the grace that
    // would have closed `tcp`.
    const marker = keep(await LineClient.connect(broker.tcpPort, await sign({ sub: 'tcp-marker' }, soon() + 1)));
    await tcp.next((l) => l.includes('token_expired'), 4000);
    tcp.send(JSON.stringify({ op: 'auth', token: await sign({ sub: 'tcp-refresh' }), id: 9 }));
    expect(await tcp.nextJson((f) => f.id === 9)).toMatchObject({ op: 'ack', exp: null });
    await marker.next('bye: token expired (4003)');
    expect(tcp.all.some((l) => l.startsWith('bye'))).toBe(false);
    expect(await tcp.quiet(() => false)).toBe(true); // still answered: not closed
  });
});

const runRedis = requireRedis('token refresh on the Redis engine');
describe.each([
  ['in-memory engine', true],
  ['Redis engine', runRedis],
] as const)('a refresh on the %s', (name, enabled) => {
  let node: TestBroker;
  let redis: TestRedis | undefined;
  beforeAll(async () => {
    if (!enabled) return;
    if (name === 'in-memory engine') node = broker;
    else node = await startNode((redis = await TestRedis.start()), { authSecret: SECRET, tokenGraceMs: GRACE_MS });
  });
  afterAll(async () => {
    if (redis) await node.close();
    await redis?.stop();
  });

  it.skipIf(!enabled)('a fresh token replaces the grant: filters it does not allow are dropped with a forbidden each; frames after it are served under it', async () => {
    const c = keep(await TestClient.connect(`${node.url}?token=${await sign({ sub: 'narrowed' }, nowS() + 600)}`));
    await c.request({ op: 'sub', topic: 'a/x' });
    await c.request({ op: 'sub', topic: 'b/x' });
    const pub = keep(await TestClient.connect(`${node.url}?token=${await sign({ sub: 'pub-narrowed' })}`));
    const narrower = await sign({ sub: 'narrowed', acl: { sub: ['a/#', 'c/x'] } }, nowS() + 600);
    // The auth and a sub it allows, back to back: the sub waits for the verification, and succeeds.
    c.send({ op: 'auth', token: narrower, id: 'refresh' });
    c.send({ op: 'sub', topic: 'c/x', id: 'after' });
    const forbidden = await c.next((f) => f.op === 'error' && f.code === 'forbidden');
    expect(forbidden).toEqual({ op: 'error', code: 'forbidden', message: "the refreshed token does not allow subscribing to 'b/x'", topic: 'b/x' });
    expect(await c.next((f) => f.id === 'refresh')).toMatchObject({ op: 'ack', exp: expect.any(Number) });
    expect(await c.next((f) => f.id === 'after')).toMatchObject({ op: 'ack' });
    await pub.request({ op: 'pub', topic: 'b/x', data: 'gone' });
    await pub.request({ op: 'pub', topic: 'a/x', data: 'kept' });
    expect(await c.next((f) => f.op === 'msg')).toMatchObject({ topic: 'a/x', data: 'kept' });
    expect(await c.request({ op: 'sub', topic: 'b/x' })).toMatchObject({ op: 'error', code: 'forbidden' });
    // A notification (no id): accepted silently.
    c.send({ op: 'auth', token: narrower });
    expect(await c.quiet((f) => f.op === 'ack' || f.op === 'error')).toBe(true);
  });

});

// Authentication and authorization over real sockets: 401 before upgrade without a valid token,
// the token's sub becomes a fixed name, acl.pub / acl.sub bound what the client may publish and subscribe.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { statusOf } from './upgrade.js';

const SECRET = 'test-secret-that-is-long-enough-for-hs256';
const key = new TextEncoder().encode(SECRET);

function token(claims: Record<string, unknown>, expires = '5m', secret = key): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(expires).sign(secret);
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ authSecret: SECRET });
});
afterAll(() => broker.close());

describe('HS256 tokens on the WebSocket upgrade', () => {
  it('no token, a garbage token, a wrong signature, an expired token: 401 before upgrade', async () => {
    expect(await statusOf(broker.url)).toBe(401);
    expect(await statusOf(`${broker.url}?token=not.a.jwt`)).toBe(401);
    const forged = await token({ sub: 'mallory' }, '5m', new TextEncoder().encode('another-secret-of-decent-length-xx'));
    expect(await statusOf(`${broker.url}?token=${forged}`)).toBe(401);
    const expired = await new SignJWT({ sub: 'late' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(key);
    expect(await statusOf(`${broker.url}?token=${expired}`)).toBe(401);
    expect(await statusOf(`${broker.url}?token=${await token({ sub: 'c12' })}`)).toBe(401); // not a valid name
    expect(broker.hub.inspect.clientCount()).toBe(0);
  });

  it('accepts ?token= and Authorization: Bearer; sub is the fixed name (rename → forbidden)', async () => {
    const a = await TestClient.connect(`${broker.url}?token=${await token({ sub: 'alice' })}&name=ignored`);
    expect(a.hello.client.name).toBe('alice');
    expect(await a.request({ op: 'rename', name: 'eve' })).toMatchObject({ op: 'error', code: 'forbidden' });
    const b = await TestClient.connect(broker.url, { headers: { Authorization: `Bearer ${await token({ sub: 'bob' })}` } });
    expect(b.hello.client.name).toBe('bob');
    // the same identity twice: the fixed name cannot fall back to another, so the second is refused
    expect(await statusOf(`${broker.url}?token=${await token({ sub: 'alice' })}`)).toBe(409);
    a.close();
    b.close();
    await Promise.all([a.closed, b.closed]);
  });

  it('acl.pub and acl.sub bound publish and subscribe; forbidden ones get forbidden, allowed ones work', async () => {
    const t = await token({ sub: 'carol', acl: { pub: ['chat/+'], sub: ['chat/#', 'news/+'] } });
    const c = await TestClient.connect(`${broker.url}/secret/stuff?token=${t}`); // initial topic outside acl.sub
    expect(await c.next((f) => f.op === 'error')).toMatchObject({ code: 'forbidden' });
    expect(await c.request({ op: 'sub', topic: 'chat/#' })).toMatchObject({ op: 'ack' });
    expect(await c.request({ op: 'sub', topic: 'news/#' })).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await c.request({ op: 'sub', topic: '#' })).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await c.request({ op: 'pub', topic: 'chat/room', data: 1 })).toMatchObject({ op: 'ack', delivered: 1 });
    expect(await c.request({ op: 'pub', topic: 'chat/room/deeper', data: 2 })).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await c.request({ op: 'pub', topic: 'news/today', data: 3 })).toMatchObject({ op: 'error', code: 'forbidden' });
    const received = c.all.filter((f) => f.op === 'msg').map((f) => f.data);
    expect(received).toEqual([1]);
    expect([...broker.hub.inspect.reached('secret/stuff')]).toHaveLength(0);
    c.close();
    await c.closed;
  });

  it('claims that are not what Switchboard reads are refused', async () => {
    expect(await statusOf(`${broker.url}?token=${await token({ sub: 'dave', acl: { pub: 'chat/#' } })}`)).toBe(401);
    expect(await statusOf(`${broker.url}?token=${await token({ sub: 'dave', acl: { sub: ['a/#/b'] } })}`)).toBe(401);
    expect(await statusOf(`${broker.url}?token=${await token({ acl: {} })}`)).toBe(401); // no sub
  });

  it('a present but malformed acl is refused (acl: null granted everything)', async () => {
    for (const acl of [null, 'all', [], 5, true, ['chat/#']]) {
      const t = await token({ sub: 'erin', acl });
      expect(await statusOf(`${broker.url}?token=${t}`), JSON.stringify(acl)).toBe(401);
    }
    expect(await statusOf(`${broker.url}?token=${await token({ sub: 'erin' })}`)).toBe(101); // absent: everything
  });

  it('delivered (how many subscribe) only for a token that may subscribe to the topic, or an admin; others get no delivered', async () => {
    const watcher = await TestClient.connect(`${broker.url}/feed/a?token=${await token({ sub: 'feed-reader' })}`);
    const pubOnly = await TestClient.connect(`${broker.url}?token=${await token({ sub: 'feed-pub', acl: { pub: ['feed/+'], sub: [] } })}`);
    const pubSub = await TestClient.connect(`${broker.url}?token=${await token({ sub: 'feed-both', acl: { pub: ['feed/+'], sub: ['feed/#'] } })}`);
    const admin = await TestClient.connect(`${broker.url}?token=${await token({ sub: 'feed-admin', admin: true, acl: { pub: ['feed/+'], sub: [] } })}`);
    const blind = await pubOnly.request({ op: 'pub', topic: 'feed/a', data: 1 });
    expect(blind).toMatchObject({ op: 'ack', seq: 1, epoch: expect.any(String) });
    expect(blind).not.toHaveProperty('delivered');
    expect(await pubSub.request({ op: 'pub', topic: 'feed/a', data: 2 })).toMatchObject({ op: 'ack', seq: 2, delivered: 1 });
    expect(await admin.request({ op: 'pub', topic: 'feed/a', data: 3 })).toMatchObject({ op: 'ack', seq: 3, delivered: 1 });
    expect((await watcher.next((f) => f.op === 'msg' && f.seq === 3)).data).toBe(3);
    for (const c of [watcher, pubOnly, pubSub, admin]) c.close();
  });
});

describe('JWKS file', () => {
  it('verifies tokens signed by a key in the file and refuses others', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const dir = mkdtempSync(join(tmpdir(), 'switchboard-jwks-'));
    const file = join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [jwk] }));
    const b = await startTestBroker({ authJwks: file });
    try {
      const good = await new SignJWT({ sub: 'erin' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime('5m').sign(privateKey);
      const c = await TestClient.connect(`${b.url}?token=${good}`);
      expect(c.hello.client.name).toBe('erin');
      const other = await generateKeyPair('ES256');
      const bad = await new SignJWT({ sub: 'erin2' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime('5m').sign(other.privateKey);
      expect(await statusOf(`${b.url}?token=${bad}`)).toBe(401);
      expect(await statusOf(`${b.url}?token=${await token({ sub: 'hs' })}`)).toBe(401); // HS256 is not in the JWKS
      c.close();
    } finally {
      await b.close();
    }
  });
});

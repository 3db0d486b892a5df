// The HTTP API behind client auth: the --api-key, or a JWT with `admin: true`; a client token without it gets 403,
// nothing at all gets 401. With auth on and no API key, the API is not left open.
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

const SECRET = 'api-test-secret-long-enough-for-hs256!!';
const key = new TextEncoder().encode(SECRET);
const token = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(key);

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

async function publish(auth?: string): Promise<number> {
  const res = await fetch(`${broker!.httpUrl}/api/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(auth && { Authorization: `Bearer ${auth}` }) },
    body: JSON.stringify({ topic: 'news', data: 1 }),
  });
  await res.text();
  return res.status;
}

describe('HTTP API access', () => {
  it('with client auth on: admin token 200, client token 403, no or bad credentials 401', async () => {
    broker = await startTestBroker({ authSecret: SECRET });
    expect(await publish()).toBe(401);
    expect(await publish('garbage')).toBe(401);
    expect(await publish(await token({ sub: 'user' }))).toBe(403);
    expect(await publish(await token({ sub: 'ops', admin: true }))).toBe(200);
    const res = await fetch(`${broker.httpUrl}/api/clients`, { headers: { Authorization: `Bearer ${await token({ sub: 'ops', admin: true })}` } });
    expect(res.status).toBe(200);
  });

  it('the API key works beside tokens', async () => {
    broker = await startTestBroker({ authSecret: SECRET, apiKey: 'k-123' });
    expect(await publish('k-123')).toBe(200);
    expect(await publish('k-124')).toBe(401);
    expect(await publish(await token({ sub: 'ops', admin: true }))).toBe(200);
  });
});

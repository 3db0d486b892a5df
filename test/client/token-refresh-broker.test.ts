// Token refresh end to end (CONTRACT-auth.md, issue 19 item 7): the client library (`getToken`) against the real
// broker's side of the contract, over real sockets. Tokens live 2.5 s; the client refreshes each before it expires,
// on the same connection, and a subscription goes on receiving; without `getToken` the app is told and the broker
// closes the connection with 4003 after the grace.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwitchboardClient, type SwitchboardError } from '@switchboard/client';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { until } from './proxy.js';

const SECRET = 'refresh-e2e-secret-long-enough-for-hs256';
const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
/**
 * Issued 20 s ago, expiring 2.5 s from now: the client refreshes it 10 % of its lifetime before its exp, ~0.25 s after
 * it got it. Its expiry (ms since 1970) goes to `expiries`.
 */
const shortLived = (sub: string, expiries: number[] = []) => {
  const exp = Date.now() / 1000 + 2.5;
  expiries.push(exp * 1000);
  return sign({ sub, iat: Math.floor(Date.now() / 1000) - 20, exp });
};

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ authSecret: SECRET, tokenGraceMs: 300 });
});
afterAll(() => broker.close());

describe('token refresh against the broker', { concurrent: true }, () => {
  it('getToken keeps one connection alive across several expiries; its subscription keeps receiving', { timeout: 20_000 }, async () => {
    let issued = 0;
    const expiries: number[] = [];
    const c = new SwitchboardClient({ url: broker.url, getToken: () => (issued++, shortLived('ann', expiries)) });
    const errors: SwitchboardError[] = [];
    const closes: unknown[] = [];
    c.on('error', (e) => errors.push(e));
    c.on('disconnected', (close) => closes.push(close));
    await c.connect();
    const sub = await c.subscribe('news');
    const got: unknown[] = [];
    sub.on('message', (m) => got.push(m.data));
    const pub = await TestClient.connect(`${broker.url}?token=${await sign({ sub: 'newsroom' })}`);
    // Publishes until the connection outlived its first two tokens (the connect's and the first refresh's), so
    // messages flow through refreshes and expiries. A steady stream, one message every 200 ms (the pause is its
    // pace, well under --rate, not a wait for anything); how many depends on the machine's speed, so every one sent
    // must arrive, in order, whatever the count.
    const outlived = () => expiries.length > 1 && Date.now() > expiries[1]!;
    let sent = 0;
    while (!outlived() && errors.length === 0 && closes.length === 0) {
      expect(await pub.request({ op: 'pub', topic: 'news', data: sent++ })).toMatchObject({ op: 'ack' });
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await pub.request({ op: 'pub', topic: 'news', data: sent++ })).toMatchObject({ op: 'ack' }); // and one after
    await until(() => got.length >= sent || closes.length > 0, 'the messages');
    expect(got).toEqual(Array.from({ length: sent }, (_, i) => i));
    expect(issued).toBeGreaterThanOrEqual(3); // the connect's token and at least two refreshes
    expect(errors).toEqual([]); // never token_expired, never a refused refresh
    expect(closes).toEqual([]); // never 4003
    expect(broker.hub.find('ann')).toBeDefined();
    pub.close();
    await c.close();
  });

  it('without getToken the app is told (token_expired) and the broker closes the connection with 4003', async () => {
    const c = new SwitchboardClient({ url: broker.url, token: await shortLived('bob'), backoff: { minMs: 60_000, maxMs: 60_000 } });
    const errors: SwitchboardError[] = [];
    const closes: { code?: number }[] = [];
    c.on('error', (e) => errors.push(e));
    c.on('disconnected', (close) => closes.push(close as { code?: number }));
    await c.connect();
    await until(() => closes.length > 0, 'the close', 6000);
    expect(errors.map((e) => e.code)).toContain('token_expired');
    expect(closes[0]).toMatchObject({ code: 4003 });
    await c.close();
  });
});

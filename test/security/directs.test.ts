// Directs have a per-recipient budget: four connections sending 60 KB directs to one slow victim used to fill its
// mailbox and get it closed with 4001. Now the senders get rate_limited once the victim's share for directs (a quarter
// of its mailbox) is queued, and the victim keeps receiving its topic messages. acl.send bounds whom a token may send to.
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Grant } from '../../src/auth/grant.js';
import { grantFromClaims } from '../../src/auth/tokens.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { waitFor } from './upgrade.js';

const SECRET = 'test-secret-that-is-long-enough-for-hs256';
const token = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

describe('directs: per-recipient budget', () => {
  it('four flooders vs one stalled victim: the victim is not closed and gets every topic message; flooders get rate_limited', async () => {
    broker = await startTestBroker({ mailboxBytes: 4 * 1024 * 1024 });
    const victim = await TestClient.connect(`${broker.url}/news?name=victim`);
    const publisher = await TestClient.connect(broker.url);
    const flooders = await Promise.all([1, 2, 3, 4].map(() => TestClient.connect(broker!.url)));
    const socket = victim.socket;
    socket.pause();
    const data = 'd'.repeat(60 * 1024);
    const PER_FLOODER = 80; // 4 × 80 × 60 KB = 19 MB: far past the victim's 4 MiB mailbox
    for (let i = 0; i < PER_FLOODER; i++) {
      for (const [k, f] of flooders.entries()) f.send({ op: 'send', to: 'victim', data, id: `${k}.${i}` });
      if (i % 8 === 0) publisher.send({ op: 'pub', topic: 'news', data: i / 8 });
    }
    const NEWS = PER_FLOODER / 8;
    const answered = (f: TestClient) => f.all.filter((x) => typeof x.id === 'string' && (x.op === 'ack' || x.op === 'error')).length;
    await waitFor(() => flooders.every((f) => answered(f) === PER_FLOODER), 10_000);
    const limited = flooders.map((f) => f.all.filter((x) => x.op === 'error' && x.code === 'rate_limited').length);
    const victimLink = broker.hub.inspect.findClient('victim')!;
    expect(victimLink.mailbox.isSealed).toBe(false);
    socket.resume();
    // Barrier: the pong comes after everything queued before it.
    expect(await victim.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(victim.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(Array.from({ length: NEWS }, (_, i) => i));
    expect(victim.ws.readyState).toBe(WebSocket.OPEN);
    const directs = victim.all.filter((f) => f.op === 'direct').length;
    for (const n of limited) expect(n).toBeGreaterThan(0);
    expect(directs + limited.reduce((a, b) => a + b, 0)).toBe(4 * PER_FLOODER);
    expect(broker.hub.stats.slowConsumerCloses).toBe(0);
    console.log(`directs: victim got ${directs} directs and ${NEWS}/${NEWS} news; flooders refused ${limited.join('/')}`);
  }, 20_000);

  it('acl.send: names, ids and * patterns; absent with acl.pub → nobody; no acl → anyone', async () => {
    const grant = (acl: unknown) => grantFromClaims({ sub: 'x', ...(acl !== undefined && { acl }) }) as Grant;
    expect(grant(undefined).maySendTo('anyone')).toBe(true);
    expect(grant({ sub: ['a/#'] }).maySendTo('anyone')).toBe(true);
    expect(grant({ pub: [] }).maySendTo('anyone')).toBe(false);
    expect(grant({ pub: ['a/#'] }).maySendTo('anyone')).toBe(false);
    expect(grant({ pub: [], send: ['bot-*', 'alice'] }).maySendTo('bot-7')).toBe(true);
    expect(grant({ send: ['bot-*', 'alice'] }).maySendTo('alice')).toBe(true);
    expect(grant({ send: ['bot-*', 'alice'] }).maySendTo('alice2')).toBe(false);
    expect(grant({ send: ['b.t'] }).maySendTo('bot')).toBe(false); // only * is special
    expect(grantFromClaims({ sub: 'x', acl: { send: 'alice' } })).not.toBeInstanceOf(Grant);

    broker = await startTestBroker({ authSecret: SECRET });
    const bob = await TestClient.connect(`${broker.url}?token=${await token({ sub: 'bot-1' })}`);
    const alice = await TestClient.connect(`${broker.url}?token=${await token({ sub: 'alice' })}`);
    const limited = await TestClient.connect(`${broker.url}?token=${await token({ sub: 'kiosk', acl: { pub: [], send: ['bot-*'] } })}`);
    const mute = await TestClient.connect(`${broker.url}?token=${await token({ sub: 'screen', acl: { pub: [] } })}`);
    expect(await limited.request({ op: 'send', to: 'bot-1', data: 1 })).toMatchObject({ op: 'ack' });
    expect(await limited.request({ op: 'send', to: bob.hello.client.id, data: 2 })).toMatchObject({ op: 'ack' }); // by id
    expect(await limited.request({ op: 'send', to: 'alice', data: 3 })).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await limited.request({ op: 'send', to: 'nobody-here', data: 4 })).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await limited.request({ op: 'send', to: 'bot-404', data: 5 })).toMatchObject({ op: 'error', code: 'not_found' });
    expect(await mute.request({ op: 'send', to: 'alice', data: 6 })).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await alice.request({ op: 'send', to: 'bot-1', data: 7 })).toMatchObject({ op: 'ack' }); // no acl: anyone
    await bob.request({ op: 'ping' });
    expect(bob.all.filter((f) => f.op === 'direct').map((f) => f.data)).toEqual([1, 2, 7]);
    expect(alice.all.some((f) => f.op === 'direct')).toBe(false);
  });
});

// `who` costs what it costs (protocol 2): pages in connection order with an opaque cursor, entries without
// addresses except for admins, the topic form behind the subscribe grant, replies charged to the asker's rate
// by size, pages encoded once per roster version, and a never-reading asker is its own slow consumer.
import { connect as tcpConnect } from 'node:net';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Roster, parseCursor, cursorAfter } from '../../src/engine/roster.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { waitFor } from './upgrade.js';

const SECRET = 'test-secret-that-is-long-enough-for-hs256';
const token = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

let broker: TestBroker | undefined;
const sockets: { destroy(): void }[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await broker?.close();
  broker = undefined;
});

/** `n` plain TCP connections that read and discard everything (a crowd that costs the test little). */
async function crowd(port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, n - i) }, () => new Promise<void>((resolve, reject) => {
        const s = tcpConnect(port, '127.0.0.1', () => resolve());
        s.on('error', reject);
        s.resume();
        sockets.push(s);
      })),
    );
  }
}

/** The crowd of the who-spam test: 1,000 in the suite; SWITCHBOARD_WHO_CROWD=5000 for the full attack. */
const CROWD = Number(process.env.SWITCHBOARD_WHO_CROWD ?? 1000);

describe('who pages', () => {
  it('Roster: one encoding per page and version; a cursor continues after the last id; changes invalidate', () => {
    const members = Array.from({ length: 7 }, (_, i) => ({ id: `c${10 - i}`, name: `n${i}`, addr: 'a', transport: 'ws' as const, state: 'online' }));
    const roster = new Roster<(typeof members)[number]>(() => 0);
    const first = roster.page('', () => members, 0, 3, false);
    expect(first.entries.map((e) => e.id)).toEqual(['c4', 'c5', 'c6']);
    expect(roster.page('', () => members, 0, 3, false)).toBe(first); // cached: same encoding
    expect(parseCursor(first.next!)).toBe(6);
    const second = roster.page('', () => members, parseCursor(first.next!)!, 3, false);
    expect(second.entries.map((e) => e.id)).toEqual(['c7', 'c8', 'c9']);
    const last = roster.page('', () => members, parseCursor(second.next!)!, 3, false);
    expect(last.entries.map((e) => e.id)).toEqual(['c10']);
    expect(last.next).toBeUndefined();
    expect(first.entries[0]).not.toHaveProperty('addr');
    expect(roster.page('', () => members, 0, 3, true).entries[0]).toHaveProperty('addr', 'a');
    roster.changed();
    expect(roster.page('', () => members, 0, 3, false)).not.toBe(first);
    expect(parseCursor('nope')).toBeNull();
    expect(parseCursor(cursorAfter('c123'))).toBe(123);
  });

  it('over a socket: 150 clients in pages of 100 (default), every client once, in connection order; bad limit and cursor are bad_frame', async () => {
    broker = await startTestBroker();
    await crowd(broker.tcpPort, 149);
    const me = await TestClient.connect(broker.url);
    await waitFor(() => broker!.hub.inspect.clientCount() === 150, 10_000);
    const ids: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const reply = await me.request(cursor === undefined ? { op: 'who' } : { op: 'who', cursor });
      expect(reply.op).toBe('ack');
      expect(reply.clients.length).toBeLessThanOrEqual(100);
      for (const c of reply.clients) {
        expect(Object.keys(c).sort()).toEqual(['id', 'name', 'state', 'transport']);
        ids.push(c.id);
      }
      cursor = reply.next;
      pages++;
    } while (cursor !== undefined);
    expect(pages).toBe(2);
    expect(new Set(ids).size).toBe(150);
    const numeric = ids.map((id) => Number(id.slice(1)));
    expect(numeric).toEqual([...numeric].sort((a, b) => a - b));
    expect((await me.request({ op: 'who', limit: 1000 })).clients).toHaveLength(150);
    // The plain-text who of a TCP client keeps the classic `addr:name` lines.
    const tcp = await (await import('../helpers/line-client.js')).LineClient.connect(broker.tcpPort);
    sockets.push(tcp.socket);
    tcp.send('who');
    await tcp.next('user list:');
    await tcp.next(`${tcp.addr}:${tcp.addr}`);
    for (const limit of [0, 1001, 2.5, '10']) expect(await me.request({ op: 'who', limit })).toMatchObject({ op: 'error', code: 'bad_frame' });
    expect(await me.request({ op: 'who', cursor: 'forged' })).toMatchObject({ op: 'error', code: 'bad_frame' });
  });

  it('with auth: addr only for admin tokens; who with a topic needs the subscribe grant', async () => {
    broker = await startTestBroker({ authSecret: SECRET });
    const admin = await TestClient.connect(`${broker.url}?token=${await token({ sub: 'root', admin: true })}`);
    const user = await TestClient.connect(`${broker.url}/chat/x?token=${await token({ sub: 'joe', acl: { sub: ['chat/#'] } })}`);
    const asAdmin = await admin.request({ op: 'who' });
    expect(asAdmin.clients.find((c: { name: string }) => c.name === 'joe')).toMatchObject({ addr: expect.stringMatching(/^127\.0\.0\.1:\d+$/), state: 'online' });
    const asUser = await user.request({ op: 'who' });
    expect(asUser.clients.every((c: object) => !('addr' in c))).toBe(true);
    expect(await user.request({ op: 'who', topic: 'chat/x' })).toMatchObject({ op: 'ack', clients: [{ name: 'joe' }] });
    expect(await user.request({ op: 'who', topic: 'secret/#' })).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await user.request({ op: 'who', topic: '#' })).toMatchObject({ op: 'error', code: 'forbidden' });
  });

  it('a who reply is charged to the asker by size: big pages run out of tokens long before small frames would', async () => {
    broker = await startTestBroker({ rate: 1000, rateBurst: 2000, maxConnectionsPerIp: 5000 });
    await crowd(broker.tcpPort, 400);
    const me = await TestClient.connect(broker.url);
    await waitFor(() => broker!.hub.inspect.clientCount() === 401, 10_000);
    // 401 entries ≈ 27 KB a page ≈ 27 tokens: a burst of 2000 affords about 75 pages, not 2000.
    for (let i = 0; i < 150; i++) me.send({ op: 'who', limit: 1000, id: i });
    await waitFor(() => me.all.filter((f) => typeof f.id === 'number').length === 150, 10_000);
    const answered = me.all.filter((f) => typeof f.id === 'number');
    expect(answered.filter((f) => f.op === 'error' && f.code === 'rate_limited').length).toBeGreaterThan(40);
    expect(answered.filter((f) => f.op === 'ack').length).toBeLessThan(100);
  });

  it(`25 never-reading who spammers among ${CROWD} clients: each is its own slow consumer; a victim gets every paced message; RSS bounded`, async () => {
    broker = await startTestBroker({ maxConnectionsPerIp: 10_000, maxConnections: 10_000, closeTimeoutMs: 300 });
    await crowd(broker.tcpPort, CROWD);
    const victim = await TestClient.connect(`${broker.url}/victim`);
    const publisher = await TestClient.connect(broker.url);
    const spammers = await Promise.all(Array.from({ length: 25 }, async () => {
      const ws = new WebSocket(broker!.url);
      const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
      await new Promise((r) => ws.once('open', r));
      ws.pause(); // never reads a byte
      return { ws, closed };
    }));
    await waitFor(() => broker!.hub.inspect.clientCount() === CROWD + 27, 20_000);
    global.gc?.();
    const rssStart = process.memoryUsage().rss;
    let rssPeak = rssStart;
    let mailboxPeak = 0;
    // Each spammer asks for 200 full pages: before the fix that was 200 whole lists (70 KB each for 1,000 clients)
    // queued per spammer, 350 MB in all.
    const who = JSON.stringify({ op: 'who', limit: 1000 });
    for (const s of spammers) for (let i = 0; i < 200; i++) s.ws.send(who);
    const N = 150;
    const latencies: number[] = [];
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      publisher.send({ op: 'pub', topic: 'victim', data: i });
      await victim.next((f) => f.op === 'msg' && f.data === i, 5000);
      latencies.push(performance.now() - t0);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      for (const l of broker.hub.inspect.clients()) mailboxPeak = Math.max(mailboxPeak, l.mailbox.bytes);
      await new Promise((r) => setTimeout(r, 5)); // paced publisher
    }
    for (const s of spammers) s.ws.resume();
    const codes = await Promise.all(spammers.map((s) => s.closed));
    latencies.sort((a, b) => a - b);
    const growth = (rssPeak - rssStart) / 2 ** 20;
    console.log(`who spam: victim ${N}/${N}, latency p50 ${latencies[N >> 1]!.toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms; RSS growth ${growth.toFixed(0)} MiB; mailbox peak ${(mailboxPeak / 2 ** 20).toFixed(1)} MiB; spammer closes ${[...new Set(codes)].join(',')}`);
    expect(victim.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(mailboxPeak).toBeLessThanOrEqual(8 * 2 ** 20);
    for (const code of codes) expect([1008, 4001, 1006]).toContain(code);
    expect(growth).toBeLessThan(200);
    expect(broker.hub.inspect.clientCount()).toBe(CROWD + 2); // the crowd, the victim and the publisher are all still here
  }, 60_000);
});

// Presence fan-out: one client renaming hundreds of times a second in front of many watchers used to cost
// renames × watchers events. Now renames are rate limited per connection (--rename-rate), consecutive unwritten
// events about one client are coalesced per watcher (truthfully: the chain of names still adds up), and a chat
// room over --room-announce-max stops announcing logins and logouts, so a join no longer costs O(room).
import { connect as tcpConnect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { LineClient } from '../helpers/line-client.js';
import { waitFor } from './upgrade.js';

let broker: TestBroker | undefined;
const closers: (() => void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await broker?.close();
  broker = undefined;
});

interface Watcher {
  ws: WebSocket;
  events: { event: string; name: string; old?: string }[];
  /** Joins and leaves of the client named `churner` heard. */
  comings: number;
  pongs: number;
}

/** Raw WebSocket watchers of `room` with presence on, recording only the events about other clients. */
async function watchers(url: string, n: number): Promise<Watcher[]> {
  const out: Watcher[] = [];
  for (let i = 0; i < n; i += 100) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(100, n - i) }, async () => {
      const ws = new WebSocket(url);
      const w: Watcher = { ws, events: [], comings: 0, pongs: 0 };
      ws.on('message', (d: Buffer) => {
        const f = JSON.parse(d.toString());
        if (f.op === 'event' && f.event === 'rename') w.events.push({ event: f.event, name: f.client.name, old: f.old });
        if (f.op === 'event' && (f.event === 'join' || f.event === 'leave') && f.client.name === 'churner') w.comings++;
        if (f.op === 'pong') w.pongs++;
      });
      await new Promise((r) => ws.once('open', r));
      ws.send(JSON.stringify({ op: 'sub', topic: 'room', presence: true }));
      closers.push(() => ws.terminate());
      return w;
    }))));
  }
  return out;
}

/** Every watcher has received everything queued for it before this point. */
async function barrier(ws: Watcher[]): Promise<void> {
  const want = ws.map((w) => w.pongs + 1);
  for (const w of ws) w.ws.send('{"op":"ping"}');
  await waitFor(() => ws.every((w, i) => w.pongs >= want[i]!), 10_000);
}

/** The renames a watcher saw chain up: each starts where the previous ended, from `first` to `last`. */
function chains(events: Watcher['events'], first: string, last: string): boolean {
  let name = first;
  for (const e of events) {
    if (e.old !== name) return false;
    name = e.name;
  }
  return name === last;
}

describe('presence fan-out', () => {
  it('a rename flood before 300 watchers: rate limited, so events stay bounded; every watcher ends on the true name', async () => {
    broker = await startTestBroker({ renameRate: 5 });
    const ws = await watchers(`${broker.url}`, 300);
    const renamer = await TestClient.connect(`${broker.url}?name=r0`);
    await renamer.request({ op: 'sub', topic: 'room' });
    await waitFor(() => broker!.hub.inspect.watcherCount('room') === 300);
    const N = 650;
    for (let i = 1; i <= N; i++) renamer.send({ op: 'rename', name: `r${i}`, id: i });
    await waitFor(() => renamer.all.filter((f) => typeof f.id === 'number').length === N, 10_000);
    const accepted = renamer.all.filter((f) => f.op === 'ack' && typeof f.id === 'number');
    const refused = renamer.all.filter((f) => f.op === 'error' && f.code === 'rate_limited');
    expect(accepted.length).toBeLessThanOrEqual(10);
    expect(refused.length).toBe(N - accepted.length);
    const final = accepted.at(-1)!.name as string;
    await barrier(ws);
    const total = ws.reduce((n, w) => n + w.events.length, 0);
    console.log(`rename flood: ${N} renames → ${accepted.length} accepted, ${total} events to 300 watchers (unbounded: ${N * 300})`);
    expect(total).toBeLessThanOrEqual(300 * accepted.length);
    for (const w of ws) expect(chains(w.events, 'r0', final)).toBe(true);
  }, 30_000);

  it('sub/unsub churn of a watched filter is charged to the churner (rate_limited), not queued to the watchers for free', async () => {
    // Each join and leave goes to every watcher, as a rename does, but it cost the churner one frame (found by a
    // review helper): now one token per 32 watchers told. (A slow refill, so that a slow machine's longer loop does
    // not earn back what it spent: 400 frames at ~11 tokens each against a burst of 2,000 + 100 a second.)
    broker = await startTestBroker({ rate: 100 });
    const ws = await watchers(`${broker.url}`, 320);
    await waitFor(() => broker!.hub.inspect.watcherCount('room') === 320);
    const churner = await TestClient.connect(`${broker.url}?name=churner`);
    const N = 200;
    for (let i = 0; i < N; i++) {
      // Each frame in a turn of its own: a watcher's join is written before the leave comes (nothing coalesces).
      churner.send({ op: 'sub', topic: 'room', id: `s${i}` });
      await new Promise((r) => setTimeout(r, 1));
      churner.send({ op: 'unsub', topic: 'room', id: `u${i}` });
      await new Promise((r) => setTimeout(r, 1));
    }
    await waitFor(() => churner.all.filter((f) => typeof f.id === 'string').length === 2 * N || churner.ws.readyState !== WebSocket.OPEN, 20_000);
    await barrier(ws);
    const refused = churner.all.filter((f) => f.op === 'error' && f.code === 'rate_limited').length;
    const most = Math.max(...ws.map((w) => w.comings));
    console.log(`sub/unsub churn: ${N} pairs → ${refused} refused, at most ${most} joins and leaves per watcher (unbounded: ${2 * N})`);
    expect(refused).toBeGreaterThan(0);
    expect(most).toBeLessThan(2 * N);
    churner.close();
  }, 30_000);

  it('without a rename limit, consecutive unwritten renames coalesce per watcher, truthfully', async () => {
    broker = await startTestBroker({ renameRate: 0 });
    const ws = await watchers(`${broker.url}`, 100);
    const renamer = await TestClient.connect(`${broker.url}?name=r0`);
    await renamer.request({ op: 'sub', topic: 'room' });
    await waitFor(() => broker!.hub.inspect.watcherCount('room') === 100);
    const N = 500;
    // Sent back to back: the broker reads them in a few turns, so watchers get a few events, not 500.
    for (let i = 1; i <= N; i++) renamer.send({ op: 'rename', name: `r${i}` });
    await waitFor(() => broker!.hub.inspect.findClient(`r${N}`) !== undefined, 10_000);
    await barrier(ws);
    const total = ws.reduce((n, w) => n + w.events.length, 0);
    console.log(`rename coalescing: ${N} renames → ${total} events to 100 watchers (${(total / 100).toFixed(1)} each)`);
    expect(total).toBeLessThan((N * 100) / 10);
    for (const w of ws) expect(chains(w.events, 'r0', `r${N}`)).toBe(true);
    // A rename and back within one turn folds into nothing; either way the chain still adds up.
    renamer.send({ op: 'rename', name: 'tmp' });
    renamer.send({ op: 'rename', name: `r${N}` });
    await renamer.request({ op: 'ping' });
    await barrier(ws);
    for (const w of ws) expect(chains(w.events, 'r0', `r${N}`)).toBe(true);
  }, 30_000);

  it('TCP room over --room-announce-max: joins cost O(1) (no login/logout fan-out) and the greeting says so', async () => {
    broker = await startTestBroker({ roomAnnounceMax: 50, maxConnectionsPerIp: 5000 });
    const N = 300;
    const sockets: Socket[] = [];
    for (let i = 0; i < N; i += 100) {
      await Promise.all(Array.from({ length: 100 }, () => new Promise<void>((resolve) => {
        const s = tcpConnect(broker!.tcpPort, '127.0.0.1', () => resolve());
        s.resume();
        sockets.push(s);
        closers.push(() => s.destroy());
      })));
    }
    await waitFor(() => broker!.hub.inspect.clientCount() === N, 10_000);
    // Frames queued for the room by N joins: O(N) now (greetings, the first 50 logins); O(N²/2) = 45,000 before.
    let frames = 0;
    for (const l of broker.hub.inspect.clients()) frames += l.mailbox.framesOut + l.mailbox.depth;
    console.log(`room joins: ${N} TCP joins with --room-announce-max 50 queued ${frames} frames in all (announcing every login: ~${(N * N) / 2})`);
    expect(frames).toBeLessThan(N + 50 * 50);
    const late = await LineClient.connect(broker.tcpPort);
    closers.push(() => late.destroy());
    expect(late.all[0]).toMatch(/Over 50 people here: logins and logouts are not announced\./);
    // Chat itself still flows.
    late.send('hello room');
    await late.next(`[${late.addr}]${late.addr}: hello room`);
  }, 30_000);
});

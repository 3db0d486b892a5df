// Every WebSocket op of docs/protocol.md, its reply and its errors, over real sockets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';

let broker: TestBroker;
const clients: TestClient[] = [];
beforeAll(async () => {
  broker = await startTestBroker({ maxPayload: 4096, maxSubscriptions: 5 });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await broker.close();
});

async function connect(query = '', path = '/ws'): Promise<TestClient> {
  const c = await TestClient.connect(`ws://127.0.0.1:${broker.port}${path}${query}`);
  clients.push(c);
  return c;
}

describe('hello', () => {
  it('is the first frame and describes the client and the server', async () => {
    const c = await connect();
    expect(c.all[0]).toBe(c.hello);
    expect(c.hello).toMatchObject({
      op: 'hello',
      client: { id: expect.stringMatching(/^c\d+$/), name: expect.stringMatching(/^guest-\d+$/), transport: 'ws' },
      heartbeatMs: broker.config.heartbeatMs,
      idleMs: broker.config.idleMs,
      idleClose: false,
      server: { name: 'switchboard', protocol: 2 },
    });
    expect(c.hello.client.addr).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('takes name= and topics= from the query and a topic from the path', async () => {
    const dash = await connect('?name=dash-1&topics=alarm/%23,news', '/ws/rowdata/pump/42');
    expect(dash.hello.client.name).toBe('dash-1');
    const pub = await connect();
    for (const topic of ['rowdata/pump/42', 'alarm/fire/3', 'news', 'rowdata/pump/43']) {
      await pub.request({ op: 'pub', topic, data: topic });
    }
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await dash.next((f) => f.op === 'msg')).data);
    expect(got).toEqual(['rowdata/pump/42', 'alarm/fire/3', 'news']);
    expect(await dash.quiet((f) => f.op === 'msg')).toBe(true);
  });

  it('answers a bad name or topic at connect with errors after hello, keeping the connection', async () => {
    const taken = await connect('?name=dash-taken');
    const c = await connect('?name=dash-taken&topics=a/%23/b');
    expect(c.hello.client.name).not.toBe('dash-taken');
    expect(await c.next((f) => f.op === 'error')).toMatchObject({ code: 'name_taken' });
    expect(await c.next((f) => f.op === 'error')).toMatchObject({ code: 'bad_topic' });
    expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    taken.close();
  });

  it('refuses other upgrade paths with 404', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${broker.port}/nope`);
    const status = await new Promise<number>((resolve) => ws.on('unexpected-response', (_q, res) => resolve(res.statusCode!)));
    expect(status).toBe(404);
  });
});

describe('sub, unsub, pub', () => {
  it('delivers to matching wildcard filters once, with per-topic seq, ts and from', async () => {
    const sub = await connect();
    const pub = await connect();
    for (const topic of ['sensors/+/temp', 'sensors/#', 'sensors/kitchen/temp']) {
      expect(await sub.request({ op: 'sub', topic })).toMatchObject({ op: 'ack' });
    }
    const before = Date.now();
    const a1 = await pub.request({ op: 'pub', topic: 'sensors/kitchen/temp', data: { c: 21 } });
    const a2 = await pub.request({ op: 'pub', topic: 'sensors/kitchen/temp', data: { c: 22 } });
    expect(a1).toMatchObject({ op: 'ack', seq: 1, delivered: 1 });
    expect(a2).toMatchObject({ op: 'ack', seq: 2 });
    const m1 = await sub.next((f) => f.op === 'msg');
    const m2 = await sub.next((f) => f.op === 'msg');
    expect(m1).toMatchObject({ topic: 'sensors/kitchen/temp', seq: 1, data: { c: 21 }, from: { id: pub.hello.client.id, name: pub.hello.client.name } });
    expect(m1.ts).toBeGreaterThanOrEqual(before);
    expect(m2.seq).toBe(2);
    expect(await sub.quiet((f) => f.op === 'msg')).toBe(true);
  });

  it('echoes to the sender unless echo:false', async () => {
    const c = await connect();
    await c.request({ op: 'sub', topic: 'echo/t' });
    await c.request({ op: 'pub', topic: 'echo/t', data: 1 });
    expect((await c.next((f) => f.op === 'msg')).data).toBe(1);
    const ack = await c.request({ op: 'pub', topic: 'echo/t', data: 2, echo: false });
    expect(ack.delivered).toBe(0);
    expect(await c.quiet((f) => f.op === 'msg')).toBe(true);
  });

  it('stops delivery after unsub', async () => {
    const sub = await connect();
    const pub = await connect();
    await sub.request({ op: 'sub', topic: 'u/1' });
    expect(await sub.request({ op: 'unsub', topic: 'u/1' })).toMatchObject({ op: 'ack' });
    expect((await pub.request({ op: 'pub', topic: 'u/1', data: 'x' })).delivered).toBe(0);
    expect(await sub.quiet((f) => f.op === 'msg')).toBe(true);
  });

  it('replays history after a position (seq + epoch) and says recovered only when nothing is missing', async () => {
    const pub = await connect();
    let epoch = '';
    for (let i = 1; i <= 5; i++) epoch = (await pub.request({ op: 'pub', topic: 'hist/a', data: i })).epoch;
    expect(epoch).toMatch(/^\S{1,24}$/);
    const late = await connect();
    const ack = await late.request({ op: 'sub', topic: 'hist/a', since: 2, epoch });
    expect(ack).toMatchObject({ op: 'ack', recovered: true, positions: { 'hist/a': { seq: 5, epoch } } });
    const msgs = [];
    for (let i = 0; i < 3; i++) msgs.push(await late.next((f) => f.op === 'msg'));
    expect(msgs.map((m) => [m.seq, m.epoch])).toEqual([[3, epoch], [4, epoch], [5, epoch]]);
    // Without the epoch the position cannot be checked: not recovered, and nothing replayed as if it were.
    const blind = await connect();
    expect(await blind.request({ op: 'sub', topic: 'hist/a', since: 2 })).toMatchObject({
      recovered: false, reason: 'unknown_position', missed: { 'hist/a': 'unknown_position' }, positions: { 'hist/a': { seq: 5, epoch } },
    });
    expect(await blind.quiet((f) => f.op === 'msg')).toBe(true);
    // Another epoch: the numbering the client knew is not this one.
    expect(await blind.request({ op: 'sub', topic: 'hist/a', since: 2, epoch: 'old.1' })).toMatchObject({ recovered: false, reason: 'epoch_changed' });
    // A seq beyond the last one is not a position this broker ever gave.
    expect(await blind.request({ op: 'sub', topic: 'hist/a', since: 9, epoch })).toMatchObject({ recovered: false, reason: 'unknown_position' });
    // A topic the broker holds nothing about.
    expect(await blind.request({ op: 'sub', topic: 'hist/never', since: 3, epoch })).toMatchObject({ recovered: false, reason: 'unknown_position', positions: {} });
  });

  it('resumes a wildcard filter from a map of per-topic positions', async () => {
    const pub = await connect();
    const e: Record<string, string> = {};
    for (const t of ['wr/a', 'wr/b', 'wr/a', 'wr/b', 'wr/a']) e[t] = (await pub.request({ op: 'pub', topic: t, data: t })).epoch;
    const late = await connect();
    // Saw wr/a up to 1 and wr/b up to 2; wr/c appears later and is new to it.
    const ack = await late.request({ op: 'sub', topic: 'wr/+', since: { 'wr/a': 1, 'wr/b': 2 }, epoch: { 'wr/a': e['wr/a'], 'wr/b': e['wr/b'] } });
    expect(ack).toMatchObject({ recovered: true, positions: { 'wr/a': { seq: 3 }, 'wr/b': { seq: 2 } } });
    const replayed = [];
    for (let i = 0; i < 2; i++) replayed.push(await late.next((f) => f.op === 'msg'));
    expect(replayed.map((m) => `${m.topic}#${m.seq}`)).toEqual(['wr/a#2', 'wr/a#3']);
    // One number for several sequences is not a position.
    expect(await late.request({ op: 'sub', topic: 'wr/+', since: 2 })).toMatchObject({ op: 'error', code: 'bad_frame' });
    expect(await late.request({ op: 'sub', topic: 'wr/+', since: { 'other/x': 1 } })).toMatchObject({ op: 'error', code: 'bad_frame' });
  });

  it('a pub without id is a notification: delivered, not acknowledged; its errors still come back', async () => {
    const sub = await connect();
    await sub.request({ op: 'sub', topic: 'note/1' });
    const pub = await connect();
    pub.send({ op: 'pub', topic: 'note/1', data: 'fire and forget' });
    expect(await sub.next((f) => f.op === 'msg')).toMatchObject({ data: 'fire and forget', seq: 1 });
    expect(await pub.quiet((f) => f.op === 'ack')).toBe(true);
    pub.send({ op: 'pub', topic: 'note/+', data: 1 });
    expect(await pub.next((f) => f.op === 'error')).toMatchObject({ code: 'bad_topic' });
    expect(pub.all.some((f) => f.op === 'ack')).toBe(false);
  });

  it('rejects bad topics and filters with bad_topic', async () => {
    const c = await connect();
    for (const frame of [
      { op: 'sub', topic: 'a/#/b' },
      { op: 'sub', topic: 'a+/b' },
      { op: 'sub', topic: '' },
      { op: 'sub', topic: 'a/b#' },
      { op: 'pub', topic: 'a/+', data: 1 },
      { op: 'pub', topic: 'x'.repeat(257), data: 1 },
      { op: 'unsub', topic: 42 },
      // A surrogate without its pair (the JSON escape \ud800 alone): not a character. In a cluster Redis would get U+FFFD
      // in its place (another topic's keys) and its Lua cjson refuses the escape (a node could no longer re-assert).
      { op: 'sub', topic: 'x/\ud800' },
      { op: 'pub', topic: '\udc00', data: 1 },
    ]) {
      expect(await c.request(frame)).toMatchObject({ op: 'error', code: 'bad_topic' });
    }
    // A pair is a character like any other.
    expect(await c.request({ op: 'sub', topic: 'x/\ud83d\ude00' })).toMatchObject({ op: 'ack' });
    expect(await c.request({ op: 'pub', topic: 'x/a', data: 1, key: '\ud800' })).toMatchObject({ op: 'error', code: 'bad_frame' });
    expect(await c.request({ op: 'send', to: '\ud800', data: 1 })).toMatchObject({ op: 'error', code: 'bad_frame' });
  });

  it('limits subscriptions per connection', async () => {
    const c = await connect();
    for (let i = 0; i < 5; i++) expect((await c.request({ op: 'sub', topic: `lim/${i}` })).op).toBe('ack');
    expect(await c.request({ op: 'sub', topic: 'lim/5' })).toMatchObject({ op: 'error', code: 'too_large' });
    expect((await c.request({ op: 'sub', topic: 'lim/0' })).op).toBe('ack'); // re-subscribing is not a new one
  });
});

describe('presence', () => {
  it('sends join, rename and leave to presence subscribers of the topic', async () => {
    const watcher = await connect();
    await watcher.request({ op: 'sub', topic: 'room/p', presence: true });
    const selfJoin = await watcher.next((f) => f.op === 'event');
    expect(selfJoin).toMatchObject({ event: 'join', topic: 'room/p', client: { id: watcher.hello.client.id } });

    const other = await connect();
    await other.request({ op: 'sub', topic: 'room/p' });
    expect(await watcher.next((f) => f.op === 'event')).toMatchObject({ event: 'join', client: { id: other.hello.client.id } });
    await other.request({ op: 'rename', name: 'otto' });
    expect(await watcher.next((f) => f.op === 'event')).toMatchObject({ event: 'rename', client: { name: 'otto' }, old: other.hello.client.name });
    other.close();
    expect(await watcher.next((f) => f.op === 'event')).toMatchObject({ event: 'leave', client: { name: 'otto' }, topic: 'room/p' });
    // a subscriber without presence hears none of it
    expect(other.all.some((f) => f.op === 'event')).toBe(false);
  });
});

describe('send, who, rename, ping, quit', () => {
  it('sends direct messages by id and by name, and not_found otherwise', async () => {
    const a = await connect('?name=alice-d');
    const b = await connect('?name=bob-d');
    expect(await a.request({ op: 'send', to: 'bob-d', data: 'hi' })).toMatchObject({ op: 'ack' });
    expect(await b.next((f) => f.op === 'direct')).toMatchObject({ from: { id: a.hello.client.id, name: 'alice-d' }, data: 'hi' });
    await b.request({ op: 'send', to: a.hello.client.id, data: { x: 1 } });
    expect((await a.next((f) => f.op === 'direct')).data).toEqual({ x: 1 });
    expect(await a.request({ op: 'send', to: 'nobody-here', data: 1 })).toMatchObject({ op: 'error', code: 'not_found' });
  });

  it('lists clients of the broker and of a topic', async () => {
    const a = await connect('?name=who-a&topics=who/t');
    const b = await connect('?name=who-b');
    const all = await b.request({ op: 'who' });
    const names = all.clients.map((c: { name: string }) => c.name);
    expect(names).toEqual(expect.arrayContaining(['who-a', 'who-b']));
    expect(all.clients[0]).toEqual({ id: expect.any(String), name: expect.any(String), transport: 'ws', state: 'online' });
    const topic = await b.request({ op: 'who', topic: 'who/t' });
    expect(topic.clients.map((c: { name: string }) => c.name)).toEqual(['who-a']);
    a.close();
  });

  it('renames, refuses taken, invalid and reserved names', async () => {
    const a = await connect();
    const b = await connect();
    expect(await a.request({ op: 'rename', name: 'neo' })).toMatchObject({ op: 'ack', name: 'neo' });
    expect(await b.request({ op: 'rename', name: 'neo' })).toMatchObject({ op: 'error', code: 'name_taken' });
    for (const name of ['', 'x'.repeat(65), ' padded', 'c12', 'a\nb', 7, 'ann\ud800']) {
      expect(await b.request({ op: 'rename', name })).toMatchObject({ op: 'error', code: 'bad_name' });
    }
    expect(await a.request({ op: 'rename', name: 'neo' })).toMatchObject({ op: 'ack' }); // own name
    const found = (await b.request({ op: 'who' })).clients.find((c: { id: string }) => c.id === a.hello.client.id);
    expect(found.name).toBe('neo');
  });

  it('answers ping with pong carrying the id', async () => {
    const c = await connect();
    expect(await c.request({ op: 'ping', id: 7 })).toEqual({ op: 'pong', id: 7 });
    c.send({ op: 'ping' });
    expect(await c.next((f) => f.op === 'pong')).toEqual({ op: 'pong' });
  });

  it('closes with 1000 after quit', async () => {
    const c = await connect();
    c.send({ op: 'quit' });
    expect((await c.closed).code).toBe(1000);
  });
});

describe('bad frames', () => {
  it('answers each with its error code and keeps the connection open', async () => {
    const c = await connect();
    const cases: [string, string][] = [
      ['not json', 'bad_frame'],
      ['[1,2]', 'bad_frame'],
      ['"op"', 'bad_frame'],
      ['{"id":1}', 'bad_frame'],
      ['{"op":"dance"}', 'unknown_op'],
      ['{"op":"pub","topic":"a"}', 'bad_frame'],
      ['{"op":"sub","topic":"a","since":-1}', 'bad_frame'],
      ['{"op":"send","data":1}', 'bad_frame'],
    ];
    for (const [text, code] of cases) {
      c.send(text);
      expect(await c.next((f) => f.op === 'error')).toMatchObject({ code });
    }
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await c.next((f) => f.op === 'error')).toMatchObject({ code: 'bad_frame' });
    c.send('{"op":"dance","id":"x1"}');
    expect(await c.next((f) => f.op === 'error')).toMatchObject({ code: 'unknown_op', id: 'x1' });
    expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
  });

  it('closes with 1009 on a frame over max payload', async () => {
    const c = await connect();
    c.send({ op: 'pub', topic: 'big', data: 'x'.repeat(5000) });
    expect((await c.closed).code).toBe(1009);
  });
});

// The TCP line protocol end to end over real sockets: a classic chat room session, JSON lines, limits and idle.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { LineClient } from './helpers/line-client.js';
import { TestClient } from './helpers/client.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ lineLimit: 1024 });
});
afterAll(() => broker.close());


describe('classic chat room session', () => {
  it('login, message, who, rename, quit, logout between two nc-style clients', async () => {
    const a = await LineClient.connect(broker.tcpPort);
    expect(a.all[0]).toMatch(/^I am here: switchboard .* room 'chat'\. You are 127\.0\.0\.1:\d+ /);
    expect(await a.next()).toMatch(/Commands: who \| rename\|<new name> \| quit/);
    // The default TCP name is the address, and the room hears the login.
    await a.next(`[${a.addr}]${a.addr}: login`);

    const b = await LineClient.connect(broker.tcpPort);
    await a.next(`[${b.addr}]${b.addr}: login`);
    await b.next(`[${b.addr}]${b.addr}: login`);

    a.send('hello everyone');
    // Seed behaviour: the message reaches everybody, the sender included.
    await b.next(`[${a.addr}]${a.addr}: hello everyone`);
    await a.next(`[${a.addr}]${a.addr}: hello everyone`);

    b.send('who');
    await b.next('user list:');
    const header = b.all.lastIndexOf('user list:');
    await b.next(`${a.addr}:${a.addr}`);
    await b.next(`${b.addr}:${b.addr}`);
    expect(b.all.slice(header + 1, header + 3).sort()).toEqual([`${a.addr}:${a.addr}`, `${b.addr}:${b.addr}`].sort());

    a.send('rename|alice');
    await a.next('rename ok');
    await b.next(`[${a.addr}]${a.addr}: rename to alice`);
    a.send('now with a name');
    await b.next(`[${a.addr}]alice: now with a name`);

    b.send('rename|alice');
    expect(await b.next((l) => l.startsWith('error'))).toBe("error name_taken: name 'alice' is taken");
    b.send('rename|c12');
    expect(await b.next((l) => l.startsWith('error'))).toMatch(/^error bad_name: /);

    a.send('quit');
    await a.next('bye');
    await a.closed;
    await b.next(`[${a.addr}]alice: logout`);
    b.close();
    await b.closed;
  });

  it('a WebSocket line with a line break or a terminal escape cannot forge a second line', async () => {
    const a = await LineClient.connect(broker.tcpPort);
    const ws = await TestClient.connect(`${broker.url}?name=mallory`);
    await ws.request({ op: 'pub', topic: 'chat', data: `hi\n[1.2.3.4:5]root: login\u001b[31m` });
    const line = await a.next((l) => l.includes('mallory'));
    expect(line).toBe(`[${ws.hello.client.id}]mallory: hi ⏎ [1.2.3.4:5]root: login\uFFFD[31m`);
    expect(a.inbox.some((l) => l.startsWith('[1.2.3.4:5]'))).toBe(false);
    ws.close();
    a.close();
  });
});

describe('JSON lines', () => {
  it('a line starting with { is a protocol frame answered with JSON lines; the room stays text', async () => {
    const a = await LineClient.connect(broker.tcpPort);
    a.send('{"op":"sub","topic":"news/+","id":1}');
    expect(await a.nextJson((f) => f.id === 1)).toEqual({ op: 'ack', id: 1, life: expect.any(String) });

    const ws = await TestClient.connect(broker.url);
    await ws.request({ op: 'pub', topic: 'news/today', data: { headline: 'x' } });
    expect(await a.nextJson((f) => f.op === 'msg')).toMatchObject({ op: 'msg', topic: 'news/today', data: { headline: 'x' } });

    a.send('{"op":"who","id":"w"}');
    const who = await a.nextJson((f) => f.id === 'w');
    expect(who.clients).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: a.addr, transport: 'tcp' }),
        expect.objectContaining({ id: ws.hello.client.id, transport: 'ws' }),
      ]),
    );

    a.send('{"op":"ping","id":7}');
    expect(await a.nextJson((f) => f.op === 'pong')).toEqual({ op: 'pong', id: 7 });

    // Bad JSON gets a JSON error and the connection stays open.
    a.send('{not json');
    expect(await a.nextJson((f) => f.op === 'error')).toMatchObject({ code: 'bad_frame' });
    a.send('{"op":"pub","topic":"bad/#","data":1,"id":"p"}');
    expect(await a.nextJson((f) => f.id === 'p')).toMatchObject({ op: 'error', code: 'bad_topic' });

    // Room traffic reaches the same client as text, also when published as a JSON frame.
    a.send('{"op":"pub","topic":"chat","data":"via json","id":"c"}');
    expect(await a.nextJson((f) => f.id === 'c')).toMatchObject({ op: 'ack', seq: expect.any(Number) });
    await a.next(`[${a.addr}]${a.addr}: via json`);
    ws.close();
    a.close();
  });
});

describe('line limits and bad bytes', () => {
  it('an over-long line gets an error line and the connection closes; the room hears logout', async () => {
    const watcher = await LineClient.connect(broker.tcpPort);
    const a = await LineClient.connect(broker.tcpPort);
    a.sendRaw('x'.repeat(3000)); // no newline: the limit is enforced before the line ends
    expect(await a.next((l) => l.startsWith('error'))).toBe('error too_large: line longer than 1024 bytes');
    expect(await a.next((l) => l.startsWith('bye'))).toBe('bye: line too long (1009)');
    await a.closed;
    await watcher.next(`[${a.addr}]${a.addr}: logout`);
    watcher.close();
  });

  it('a line of exactly the limit passes', async () => {
    const a = await LineClient.connect(broker.tcpPort);
    const text = 'y'.repeat(1024);
    a.sendRaw(text + '\r\n');
    expect(await a.next((l) => l.includes(': y'))).toMatch(new RegExp(`: ${text}$`));
    a.close();
  });

  it('invalid UTF-8 gets an error line, the line is skipped and the connection stays open', async () => {
    const a = await LineClient.connect(broker.tcpPort);
    a.sendRaw(Buffer.from([0x66, 0xff, 0xfe, 0xc3, 0x28, 0x0a]));
    expect(await a.next((l) => l.startsWith('error'))).toBe('error bad_frame: line is not valid UTF-8; it was skipped');
    a.send('still here ✓');
    await a.next(`[${a.addr}]${a.addr}: still here ✓`);
    a.close();
  });

  it('binary garbage never crashes the broker', async () => {
    const a = await LineClient.connect(broker.tcpPort);
    const garbage = Buffer.alloc(4000);
    let x = 12345;
    for (let i = 0; i < garbage.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      garbage[i] = x >>> 24;
    }
    a.sendRaw(garbage);
    a.sendRaw('\n');
    // Random bytes hold newlines: many short lines, none valid UTF-8 → one error line each, no crash.
    expect(await a.next((l) => l.startsWith('error '))).toMatch(/^error bad_frame: line is not valid UTF-8/);
    a.destroy();
    // Whatever the garbage did to that connection, the broker still serves the next one.
    const b = await LineClient.connect(broker.tcpPort);
    b.send('after garbage');
    await b.next(`[${b.addr}]${b.addr}: after garbage`);
    b.close();
  });

  it('partial lines and \\r\\n are reassembled; a last line without newline counts at EOF', async () => {
    const a = await LineClient.connect(broker.tcpPort);
    const watcher = await LineClient.connect(broker.tcpPort);
    // Pauses between the pieces so that they arrive in separate reads: nothing the broker sends marks a partial line
    // as read, so no condition can be awaited instead. A loaded machine may merge pieces (the test then checks less,
    // never fails); a hook counting the reader's reads would let the test wait for each.
    const pause = () => new Promise((r) => setTimeout(r, 30));
    a.sendRaw('hel');
    await pause();
    a.sendRaw('lo\r');
    await pause();
    a.sendRaw('\nwor');
    await pause();
    a.sendRaw('ld\r\nwh');
    await pause();
    a.sendRaw('o\n');
    const from = (l: string) => l.startsWith(`[${a.addr}]`);
    expect(await watcher.next(from)).toBe(`[${a.addr}]${a.addr}: hello`);
    expect(await watcher.next(from)).toBe(`[${a.addr}]${a.addr}: world`);
    expect(await a.next((l) => l.startsWith('user list'))).toBe('user list:');
    a.socket.end('last words'); // half-close, as `printf 'last words' | nc -N` does
    expect(await watcher.next(from)).toBe(`[${a.addr}]${a.addr}: last words`);
    expect(await watcher.next(from)).toBe(`[${a.addr}]${a.addr}: logout`);
    expect(await a.next((l) => l.startsWith('bye'))).toBe('bye');
    await a.closed;
    watcher.close();
  });
});

describe('idle', () => {
  it('a TCP client that sends nothing is closed after idleMs and the room hears time out', async () => {
    const quick = await startTestBroker({ idleMs: 200, idleGraceMs: 100 });
    try {
      const watcher = await LineClient.connect(quick.tcpPort);
      const silent = await LineClient.connect(quick.tcpPort);
      const keepAlive = setInterval(() => watcher.send('{"op":"ping"}'), 50);
      try {
        expect(await silent.next((l) => l.startsWith('bye'), 5000)).toBe('bye: idle timeout (4000)');
        await silent.closed;
        await watcher.next(`[${silent.addr}]${silent.addr}: time out`, 5000);
        expect(watcher.inbox.some((l) => l === `[${silent.addr}]${silent.addr}: logout`)).toBe(false);
      } finally {
        clearInterval(keepAlive);
      }
      watcher.close();
    } finally {
      await quick.close();
    }
  });
});

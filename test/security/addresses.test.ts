// Addresses only where docs/protocol.md allows them (issue 19, item 4): the TCP line clients of a room show their
// address in that room's lines and in its plain-text `who`; everyone else appears by id, and only admins see every
// address. Over real TCP, through `/lines`, and with auth. Before: the plain-text `who` listed every client of the
// broker with its IP:port (WebSocket clients outside the room too), whatever the token's grant.
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { LineClient } from '../helpers/line-client.js';

const SECRET = 'addresses-test-secret-long-enough-for-hs256';
const token = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

let broker: TestBroker | undefined;
const open: { close(): void }[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) c.close();
  await broker?.close();
  broker = undefined;
});
const keep = <T extends { close(): void }>(c: T): T => (open.push(c), c);

/**
 * A client whose address is none of `taken`, kept. Connections to two different ports (the TCP port, the HTTP port) may
 * get the same source port, since the kernel keeps only the whole 4-tuple unique; two such clients show the same
 * address, and a test could not tell one's from the other's.
 */
async function distinct<T extends { close(): void }>(taken: string[], connect: () => Promise<T>, addrOf: (c: T) => string): Promise<T> {
  for (;;) {
    const c = await connect();
    if (!taken.includes(addrOf(c))) return keep(c);
    c.close();
  }
}
const wsAddr = (c: TestClient) => c.hello.client.addr as string;
const lineAddr = (c: LineClient) => c.addr;

/** Whether `text` names `addr` (127.0.0.1:3812 is not named by 127.0.0.1:38122). */
const names = (text: string, addr: string) => new RegExp(`${addr.replace(/[.]/g, '\\.')}(?!\\d)`).test(text);

/** The lines of the `user list:` answer to a plain-text `who` (a JSON ping right after it marks its end). */
async function userList(c: LineClient): Promise<string[]> {
  const from = c.all.length;
  c.send('who');
  await c.quiet(() => false);
  const lines = c.all.slice(from);
  const start = lines.indexOf('user list:');
  expect(start, `no user list: ${JSON.stringify(lines)}`).toBeGreaterThanOrEqual(0);
  return lines.slice(start + 1, lines.findIndex((l) => l.includes('"op":"pong"')));
}

describe('addresses in the TCP room', () => {
  it("the plain-text who lists the room's members: TCP ones with their address, others by id; nobody outside it", async () => {
    broker = await startTestBroker();
    const tcp = keep(await LineClient.connect(broker.tcpPort));
    const inRoom = await distinct([tcp.addr], () => TestClient.connect(`${broker!.url}?name=wanda`), wsAddr);
    await inRoom.request({ op: 'sub', topic: 'chat', presence: true });
    const outside = await distinct([tcp.addr], () => TestClient.connect(`${broker!.url}?name=xavier`), wsAddr);
    const lab = await distinct([tcp.addr], () => LineClient.upgrade(broker!.port, '?room=lab&name=lab-user'), lineAddr);

    const list = await userList(tcp);
    expect(list.sort()).toEqual([`${tcp.addr}:${tcp.addr}`, `${inRoom.hello.client.id}:wanda`].sort());
    const everything = tcp.all.join('\n');
    for (const addr of [inRoom.hello.client.addr, outside.hello.client.addr, lab.addr]) expect(names(everything, addr), addr).toBe(false);

    // Through /lines, the room chosen there: its own members only.
    expect(await userList(lab)).toEqual([`${lab.addr}:lab-user`]);
    expect(names(lab.all.join('\n'), tcp.addr)).toBe(false);
  });

  it("a WebSocket client's lines in the room show its id, never its address", async () => {
    broker = await startTestBroker();
    const tcp = keep(await LineClient.connect(broker.tcpPort));
    const ws = await distinct([tcp.addr], () => TestClient.connect(`${broker!.url}?name=wanda`), wsAddr);
    await ws.request({ op: 'sub', topic: 'chat', presence: true });
    const id = ws.hello.client.id;
    await tcp.next(`[${id}]wanda: login`);
    await ws.request({ op: 'pub', topic: 'chat', data: 'hello' });
    await tcp.next(`[${id}]wanda: hello`);
    await ws.request({ op: 'rename', name: 'wendy' });
    await tcp.next(`[${id}]wanda: rename to wendy`);
    ws.close();
    await tcp.next(`[${id}]wendy: logout`);
    expect(names(tcp.all.join('\n'), ws.hello.client.addr)).toBe(false);
  });

  it('a JSON line cannot have a who of another topic rendered as address lines', async () => {
    broker = await startTestBroker();
    const tcp = keep(await LineClient.connect(broker.tcpPort));
    const other = await distinct([tcp.addr], () => LineClient.upgrade(broker!.port, '?room=elsewhere&name=other'), lineAddr);
    for (const id of ['\u0000line:who', `\u0000line:${'A'.repeat(12)}:who`]) {
      tcp.send(JSON.stringify({ op: 'who', topic: 'elsewhere', id }));
      const reply = await tcp.nextJson((f) => f.id === id);
      expect(reply.clients.map((c: object) => Object.keys(c).sort())).toEqual([['id', 'name', 'state', 'transport']]);
    }
    expect(names(tcp.all.join('\n'), other.addr)).toBe(false);
  });
});

describe('--room-addresses hide', () => {
  it('the room shows ids only, and a TCP client is not named by its address either', async () => {
    broker = await startTestBroker({ roomAddresses: 'hide' });
    const a = keep(await LineClient.connect(broker.tcpPort));
    const watcher = keep(await TestClient.connect(`${broker.url}?name=watcher`));
    await watcher.request({ op: 'sub', topic: 'chat', presence: true });
    const b = keep(await LineClient.connect(broker.tcpPort));
    const joined = await watcher.next((f) => f.op === 'event' && f.event === 'join' && f.client.transport === 'tcp');
    const { id, name } = joined.client;
    expect(name).toBe(`guest-${id.slice(1)}`);
    await a.next(`[${id}]${name}: login`);
    b.send('hello');
    await a.next(`[${id}]${name}: hello`);
    expect(await userList(a)).toContain(`${id}:${name}`);
    const seen = [...a.all, ...watcher.all.map((f) => JSON.stringify(f))].join('\n');
    expect(names(seen, b.addr)).toBe(false);
    expect(b.all[0]).toContain(`You are ${name} from ${b.addr}`); // its own address, to itself only
  });
});

describe('addresses in the TCP room, with auth', () => {
  it('a token that may not subscribe to the room gets forbidden, not the list; on the TCP port and through /lines', async () => {
    broker = await startTestBroker({ authSecret: SECRET });
    const member = keep(await LineClient.connect(broker.tcpPort, await token({ sub: 'member', acl: { sub: ['chat', 'lab'] } })));
    const wanda = await token({ sub: 'wanda' });
    const ws = await distinct([member.addr], () => TestClient.connect(`${broker!.url}?token=${wanda}`), wsAddr);
    await ws.request({ op: 'sub', topic: 'chat' });
    const newsreader = await token({ sub: 'newsreader', acl: { sub: ['news/+'] } });
    const news = await distinct([wsAddr(ws)], () => LineClient.connect(broker!.tcpPort, newsreader), lineAddr);
    news.send('who');
    expect(await news.next((l) => l.startsWith('error '))).toMatch(/^error forbidden: /);
    const labnews = await token({ sub: 'labnews', acl: { sub: ['news/+'] } });
    const viaLines = await distinct([member.addr], () => LineClient.upgrade(broker!.port, `?room=lab&token=${labnews}`), lineAddr);
    viaLines.send('who');
    expect(await viaLines.next((l) => l.startsWith('error '))).toMatch(/^error forbidden: /);
    await news.quiet(() => false);
    await viaLines.quiet(() => false);
    for (const c of [news, viaLines]) {
      expect(c.all).not.toContain('user list:');
      for (const addr of [member.addr, ws.hello.client.addr]) expect(names(c.all.join('\n'), addr), addr).toBe(false);
    }
    // A member of the room sees it, addresses of its TCP clients only; an admin sees every address.
    expect((await userList(member)).sort()).toEqual([`${member.addr}:member`, `${ws.hello.client.id}:wanda`].sort());
    const admin = keep(await LineClient.connect(broker.tcpPort, await token({ sub: 'root', admin: true })));
    expect(await userList(admin)).toContain(`${ws.hello.client.addr}:wanda`);
  });
});

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
    const inRoom = keep(await TestClient.connect(`${broker.url}?name=wanda`));
    await inRoom.request({ op: 'sub', topic: 'chat', presence: true });
    const outside = keep(await TestClient.connect(`${broker.url}?name=xavier`));
    const lab = keep(await LineClient.upgrade(broker.port, '?room=lab&name=lab-user'));

    const list = await userList(tcp);
    expect(list.sort()).toEqual([`${tcp.addr}:${tcp.addr}`, `${inRoom.hello.client.id}:wanda`].sort());
    const everything = tcp.all.join('\n');
    for (const addr of [inRoom.hello.client.addr, outside.hello.client.addr, lab.addr]) expect(everything).not.toContain(addr);

    // Through /lines, the room chosen there: its own members only.
    expect(await userList(lab)).toEqual([`${lab.addr}:lab-user`]);
    expect(lab.all.join('\n')).not.toContain(tcp.addr);
  });

  it("a WebSocket client's lines in the room show its id, never its address", async () => {
    broker = await startTestBroker();
    const tcp = keep(await LineClient.connect(broker.tcpPort));
    const ws = keep(await TestClient.connect(`${broker.url}?name=wanda`));
    await ws.request({ op: 'sub', topic: 'chat', presence: true });
    const id = ws.hello.client.id;
    await tcp.next(`[${id}]wanda: login`);
    await ws.request({ op: 'pub', topic: 'chat', data: 'hello' });
    await tcp.next(`[${id}]wanda: hello`);
    await ws.request({ op: 'rename', name: 'wendy' });
    await tcp.next(`[${id}]wanda: rename to wendy`);
    ws.close();
    await tcp.next(`[${id}]wendy: logout`);
    expect(tcp.all.join('\n')).not.toContain(ws.hello.client.addr);
  });

  it('a JSON line cannot have a who of another topic rendered as address lines', async () => {
    broker = await startTestBroker();
    const tcp = keep(await LineClient.connect(broker.tcpPort));
    const other = keep(await LineClient.upgrade(broker.port, '?room=elsewhere&name=other'));
    for (const id of ['\u0000line:who', `\u0000line:${'A'.repeat(12)}:who`]) {
      tcp.send(JSON.stringify({ op: 'who', topic: 'elsewhere', id }));
      const reply = await tcp.nextJson((f) => f.id === id);
      expect(reply.clients.map((c: object) => Object.keys(c).sort())).toEqual([['id', 'name', 'state', 'transport']]);
    }
    expect(tcp.all.join('\n')).not.toContain(other.addr);
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
    expect(seen).not.toContain(b.addr);
    expect(b.all[0]).toContain(`You are ${name} from ${b.addr}`); // its own address, to itself only
  });
});

describe('addresses in the TCP room, with auth', () => {
  it('a token that may not subscribe to the room gets forbidden, not the list; on the TCP port and through /lines', async () => {
    broker = await startTestBroker({ authSecret: SECRET });
    const member = keep(await LineClient.connect(broker.tcpPort, await token({ sub: 'member', acl: { sub: ['chat', 'lab'] } })));
    const ws = keep(await TestClient.connect(`${broker.url}?token=${await token({ sub: 'wanda' })}`));
    await ws.request({ op: 'sub', topic: 'chat' });
    const news = keep(await LineClient.connect(broker.tcpPort, await token({ sub: 'newsreader', acl: { sub: ['news/+'] } })));
    news.send('who');
    expect(await news.next((l) => l.startsWith('error '))).toMatch(/^error forbidden: /);
    const viaLines = keep(await LineClient.upgrade(broker.port, `?room=lab&token=${await token({ sub: 'labnews', acl: { sub: ['news/+'] } })}`));
    viaLines.send('who');
    expect(await viaLines.next((l) => l.startsWith('error '))).toMatch(/^error forbidden: /);
    await news.quiet(() => false);
    await viaLines.quiet(() => false);
    for (const c of [news, viaLines]) {
      expect(c.all).not.toContain('user list:');
      for (const addr of [member.addr, ws.hello.client.addr]) expect(c.all.join('\n')).not.toContain(addr);
    }
    // A member of the room sees it, addresses of its TCP clients only; an admin sees every address.
    expect((await userList(member)).sort()).toEqual([`${member.addr}:member`, `${ws.hello.client.id}:wanda`].sort());
    const admin = keep(await LineClient.connect(broker.tcpPort, await token({ sub: 'root', admin: true })));
    expect(await userList(admin)).toContain(`${ws.hello.client.addr}:wanda`);
  });
});

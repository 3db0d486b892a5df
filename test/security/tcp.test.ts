// Limits and auth on the TCP line protocol: connection slots shared with WebSocket (refused with `bye … (1013)`),
// the first-line auth frame when tokens are required (else `unauthorized` and 1008), and the line-length limit.
import { connect, type Socket } from 'node:net';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { LineClient } from '../helpers/line-client.js';
import { waitFor } from './upgrade.js';

const SECRET = 'tcp-test-secret-long-enough-for-hs256!!';
const key = new TextEncoder().encode(SECRET);
const token = (claims: Record<string, unknown>, exp: string | number = '5m') =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(key);

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

/** A raw TCP conversation: everything the server sent until it closed (or `untilMs` passed). */
async function converse(port: number, lines: string[], untilMs = 1500): Promise<{ text: string; closed: boolean; socket: Socket }> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let text = '';
  socket.on('data', (d) => (text += d.toString()));
  const closed = new Promise<boolean>((r) => socket.on('close', () => r(true)));
  await new Promise((r) => socket.once('connect', r));
  for (const l of lines) socket.write(l + '\n');
  const didClose = await Promise.race([closed, new Promise<boolean>((r) => setTimeout(() => r(false), untilMs))]);
  return { text, closed: didClose, socket };
}

describe('TCP connection limits', () => {
  it('TCP and WebSocket share the per-IP bound; a TCP client over it is told to try later and closed', async () => {
    broker = await startTestBroker({ maxConnectionsPerIp: 2 });
    const ws = await TestClient.connect(broker.url);
    const tcp = await LineClient.connect(broker.tcpPort);
    const refused = await converse(broker.tcpPort, []);
    expect(refused.closed).toBe(true);
    expect(refused.text).toMatch(/^bye: at most 2 connections per IP address \(1013\)\n$/);
    expect(broker.hub.inspect.clientCount()).toBe(2);
    tcp.close();
    await tcp.closed;
    await waitFor(() => broker!.admission!.size === 1);
    const again = await LineClient.connect(broker.tcpPort);
    again.close();
    ws.close();
  });

  it('a line over --line-limit is answered too_large and closes the connection', async () => {
    broker = await startTestBroker({ lineLimit: 100 });
    const c = await LineClient.connect(broker.tcpPort);
    c.send('z'.repeat(150));
    await c.closed;
    expect(c.all.some((l) => /too_large/.test(l))).toBe(true);
    await waitFor(() => broker!.hub.inspect.clientCount() === 0);
  });
});

describe('TCP authentication (first line)', () => {
  it('no auth line, garbage, a bad or expired token: unauthorized, bye (1008), closed, no actor', async () => {
    broker = await startTestBroker({ authSecret: SECRET });
    for (const first of ['hello there', '{"op":"ping"}', '{"op":"auth","token":"nope"}', `{"op":"auth","token":"${await token({ sub: 'old' }, Math.floor(Date.now() / 1000) - 10)}"}`]) {
      const r = await converse(broker.tcpPort, [first]);
      expect(r.closed, first).toBe(true);
      const [error, bye] = r.text.trim().split('\n');
      expect(JSON.parse(error!)).toMatchObject({ op: 'error', code: 'unauthorized' });
      expect(bye).toBe('bye: unauthorized (1008)');
    }
    expect(broker.hub.inspect.clientCount()).toBe(0);
  });

  it('a valid auth line is acknowledged; the client joins under the token name, which is fixed', async () => {
    broker = await startTestBroker({ authSecret: SECRET });
    const t = await token({ sub: 'tcp-alice', acl: { pub: ['chat'], sub: ['chat'] } });
    // The auth line and the first command arrive in one packet: the command is kept for the connection.
    const r = await converse(broker.tcpPort, [`{"op":"auth","token":"${t}","id":7}`, 'rename|mallory', 'hi all'], 800);
    expect(r.closed).toBe(false);
    const lines = r.text.split('\n');
    expect(JSON.parse(lines[0]!)).toEqual({ op: 'ack', id: 7, name: 'tcp-alice' });
    expect(r.text).toMatch(/tcp-alice: login/);
    expect(r.text).toMatch(/error forbidden/); // rename refused: the name comes from the token
    expect(r.text).toMatch(/tcp-alice: hi all/);
    expect(broker.hub.inspect.findClient('tcp-alice')?.transport).toBe('tcp');
    r.socket.destroy();
  });

  it('a client that sends nothing is dropped after idle-ms without ever joining', async () => {
    broker = await startTestBroker({ authSecret: SECRET, idleMs: 200 });
    const r = await converse(broker.tcpPort, [], 2000);
    expect(r.closed).toBe(true);
    expect(r.text).toMatch(/unauthorized/);
    expect(broker.hub.stats.connectionsOpened).toBe(0);
  });
});

describe('TCP chat lines: bidi controls and line separators', () => {
  const UNSAFE = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;

  it('names with them are bad_name on both transports; text with them reaches TCP lines stripped, as one line', async () => {
    broker = await startTestBroker();
    const tcp = await LineClient.connect(broker.tcpPort);
    const ws = await TestClient.connect(`${broker.url}?name=wsuser`);
    for (const name of ['evil\u202Egpj.exe', 'a\u2028b', 'x\u2066y\u2069', 'rl\u200Fm', 'p\u2029q', 'ar\u061Cb']) {
      expect(await ws.request({ op: 'rename', name }), JSON.stringify(name)).toMatchObject({ op: 'error', code: 'bad_name' });
      tcp.send(`rename|${name}`);
      expect(await tcp.next((l) => l.startsWith('error '))).toMatch(/^error bad_name: name contains bidi controls or line separators$/);
    }
    expect(await ws.request({ op: 'pub', topic: broker.config.room, data: 'hi \u202Eevil\u202C and\u2028[1.2.3.4:5]root: login\u2029end' })).toMatchObject({ op: 'ack' });
    const line = await tcp.next((l) => l.includes('wsuser: hi'));
    expect(line).not.toMatch(UNSAFE);
    expect(line).toBe(`[${ws.hello.client.id}]wsuser: hi evil and ⏎ [1.2.3.4:5]root: login ⏎ end`);
    // Barrier: once the who reply is here, every line sent before it is too.
    tcp.send('who');
    await tcp.next('user list:');
    expect(tcp.all.filter((l) => UNSAFE.test(l))).toEqual([]);
    tcp.close();
    ws.close();
  });
});

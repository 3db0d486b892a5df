// A TCP user and a WebSocket user in the same room: messages, names, renames, joins and leaves cross over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { LineClient } from './helpers/line-client.js';
import { TestClient } from './helpers/client.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.close());

describe('TCP ↔ WebSocket chat', () => {
  it('messages, names, renames, joins, leaves and who cross between the transports', async () => {
    const tcp = await LineClient.connect(broker.tcpPort);
    const web = await TestClient.connect(`${broker.url}?name=wendy`);
    // The room shows a WebSocket client by its id: addresses only of its TCP clients (docs/protocol.md).
    const webAddr = web.hello.client.id as string;
    expect(await web.request({ op: 'sub', topic: 'chat', presence: true })).toMatchObject({ op: 'ack' });
    // The browser joining the room is a login line for the terminal.
    await tcp.next(`[${webAddr}]wendy: login`);

    // A second terminal user arrives: the browser gets a join event naming its transport.
    const tcp2 = await LineClient.connect(broker.tcpPort);
    const joined = await web.next((f) => f.op === 'event' && f.event === 'join' && f.client.name === tcp2.addr);
    expect(joined).toMatchObject({ topic: 'chat', client: { name: tcp2.addr, transport: 'tcp' } });

    // Browser → terminal.
    await web.request({ op: 'pub', topic: 'chat', data: 'hi from the browser' });
    await tcp.next(`[${webAddr}]wendy: hi from the browser`);
    // Non-text data reaches the terminal as JSON text.
    await web.request({ op: 'pub', topic: 'chat', data: { temp: 21.5 } });
    await tcp.next(`[${webAddr}]wendy: {"temp":21.5}`);

    // Terminal → browser: a msg frame whose data is the text and whose sender is the TCP client.
    tcp.send('hi from nc');
    const msg = await web.next((f) => f.op === 'msg' && f.data === 'hi from nc');
    expect(msg).toMatchObject({ topic: 'chat', from: { name: tcp.addr } });

    // Renames both ways.
    expect(await web.request({ op: 'rename', name: 'wanda' })).toMatchObject({ op: 'ack', name: 'wanda' });
    await tcp.next(`[${webAddr}]wendy: rename to wanda`);
    tcp.send('rename|tom');
    await tcp.next('rename ok');
    expect(await web.next((f) => f.op === 'event' && f.event === 'rename' && f.client.transport === 'tcp')).toMatchObject({ old: tcp.addr, client: { name: 'tom', transport: 'tcp' } });
    tcp.send('now as tom');
    expect(await web.next((f) => f.op === 'msg' && f.data === 'now as tom')).toMatchObject({ from: { name: 'tom' } });

    // Events name clients without their address (protocol 2).
    expect(joined.client.addr).toBeUndefined();
    // who, from either side, lists both with their transport and state; addresses only for admins.
    const who = await web.request({ op: 'who', topic: 'chat' });
    expect(who.clients).toEqual(
      expect.arrayContaining([
        { id: expect.any(String), name: 'wanda', transport: 'ws', state: 'online' },
        { id: expect.any(String), name: 'tom', transport: 'tcp', state: 'online' },
      ]),
    );
    // The plain-text who of the chat room keeps the classic addr:name lines for its TCP clients (--room-addresses show).
    tcp.send('who');
    await tcp.next('user list:');
    await tcp.next(`${webAddr}:wanda`);
    await tcp.next(`${tcp.addr}:tom`);
    tcp.send('{"op":"who","topic":"chat","id":1}');
    const tcpWho = await tcp.nextJson((f) => f.id === 1);
    expect(tcpWho.clients.map((c: { transport: string }) => c.transport).sort()).toEqual(['tcp', 'tcp', 'ws']);

    // Leaves both ways.
    tcp2.send('quit');
    expect(await web.next((f) => f.op === 'event' && f.event === 'leave')).toMatchObject({ client: { name: tcp2.addr } });
    web.close();
    await tcp.next(`[${webAddr}]wanda: logout`);
    tcp.send('quit');
    await tcp.closed;
  });

  it('a server-side publish to the room reads [server]: text on TCP and has no from on WebSocket', async () => {
    const tcp = await LineClient.connect(broker.tcpPort);
    const web = await TestClient.connect(broker.url);
    await web.request({ op: 'sub', topic: 'chat' });
    const res = await fetch(`${broker.httpUrl}/api/publish`, { method: 'POST', body: JSON.stringify({ topic: 'chat', data: 'maintenance at 22:00' }) });
    expect(res.status).toBe(200);
    await tcp.next('[server]: maintenance at 22:00');
    const msg = await web.next((f) => f.op === 'msg');
    expect(msg.data).toBe('maintenance at 22:00');
    expect(msg.from).toBeUndefined();
    tcp.close();
    web.close();
  });
});

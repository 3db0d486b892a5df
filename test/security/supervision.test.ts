// Supervision by fault injection: a throw inside one connection's actor (handler action, transport write) or in
// the supervisor's handling of one frame or one join hurts only that client: 1011 (or an internal error),
// logged with its actor id; everyone else keeps receiving and the process keeps running.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaults, type Config } from '../../src/config.js';
import { startBroker, type Broker } from '../../src/broker.js';
import type { Link } from '../../src/actors/link.js';
import type { JoinRequest } from '../../src/engine/memory.js';
import { TestClient } from '../helpers/client.js';
import { LineClient } from '../helpers/line-client.js';
import { waitFor } from './upgrade.js';

let broker: Broker;
let url: string;
let logs: { level: number; msg: string; client?: string }[];
let uncaught: unknown[];
const onUncaught = (err: unknown) => uncaught.push(err);

beforeEach(async () => {
  logs = [];
  uncaught = [];
  process.on('uncaughtException', onUncaught);
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'error' };
  broker = await startBroker(config, { log: pino({ level: 'error' }, sink), tcpPort: 0 });
  url = `ws://127.0.0.1:${broker.port}/ws`;
});
afterEach(async () => {
  process.off('uncaughtException', onUncaught);
  await broker.close();
});

function linkOf(c: TestClient): Link {
  return broker.hub.inspect.findClient(c.hello.client.id)!;
}

/** Bystanders subscribed to `t`: after the fault they still receive, and a new client can still join. */
async function expectOthersUnharmed(bystanders: TestClient[]): Promise<void> {
  const pub = await TestClient.connect(url);
  for (let i = 0; i < 5; i++) await pub.request({ op: 'pub', topic: 't', data: `after-${i}` });
  for (const b of bystanders) {
    for (let i = 0; i < 5; i++) expect(await b.next((f) => f.op === 'msg' && String(f.data).startsWith('after-'))).toMatchObject({ data: `after-${i}` });
  }
  pub.close();
  expect(uncaught).toEqual([]);
  expect(broker.supervisor.getSnapshot().status).toBe('active');
}

describe('a fault inside one connection actor', () => {
  it('a throwing handler action closes only that connection with 1011 and logs its actor id', async () => {
    const victim = await TestClient.connect(url);
    const others = await Promise.all([1, 2].map(() => TestClient.connect(`${url}/t`)));
    const link = linkOf(victim);
    link.send = () => {
      throw new Error('injected handler fault');
    };
    victim.send({ op: 'ping' }); // replyPong → link.send throws inside the actor
    expect((await victim.closed).code).toBe(1011);
    await waitFor(() => !broker.hub.inspect.isConnected(link));
    expect(broker.hub.stats.crashes).toBe(1);
    expect(logs.some((l) => l.client === link.id && /crashed/.test(l.msg))).toBe(true);
    await expectOthersUnharmed(others);
    for (const o of others) o.close();
  });

  it('a transport that throws on write closes only that connection with 1011; the other mailboxes still flush', async () => {
    const victim = await TestClient.connect(`${url}/t`);
    const others = await Promise.all([1, 2].map(() => TestClient.connect(`${url}/t`)));
    const link = linkOf(victim);
    link.wire.write = () => {
      throw new Error('injected transport fault');
    };
    const pub = await TestClient.connect(url);
    await pub.request({ op: 'pub', topic: 't', data: 'during' }); // the same flush writes to all three
    for (const o of others) expect(await o.next((f) => f.op === 'msg')).toMatchObject({ data: 'during' });
    expect((await victim.closed).code).toBe(1011);
    await waitFor(() => !broker.hub.inspect.isConnected(link) && broker.hub.inspect.reached('t').length === 2);
    expect(logs.some((l) => l.client === link.id && /crashed/.test(l.msg))).toBe(true);
    await expectOthersUnharmed(others);
    pub.close();
    for (const o of others) o.close();
  });
});

describe('a fault in a TCP connection', () => {
  it('a TCP wire that throws on write closes that client with 1011 (bye line); WebSocket subscribers of the room go on', async () => {
    const tcp = await LineClient.connect(broker.tcpPort);
    await waitFor(() => broker.hub.inspect.clientCount() === 1);
    const link = [...broker.hub.inspect.clients()][0]!;
    const others = await Promise.all([1, 2].map(() => TestClient.connect(`${url}/t`)));
    const roomWatcher = await TestClient.connect(`${url}/chat`);
    link.wire.write = () => {
      throw new Error('injected tcp transport fault');
    };
    const pub = await TestClient.connect(url);
    await pub.request({ op: 'pub', topic: 'chat', data: 'to the room' });
    expect(await roomWatcher.next((f) => f.op === 'msg')).toMatchObject({ data: 'to the room' });
    await tcp.closed;
    expect(tcp.all.at(-1)).toBe('bye: internal error (1011)');
    await waitFor(() => !broker.hub.inspect.isConnected(link));
    expect(logs.some((l) => l.client === link.id && /crashed/.test(l.msg))).toBe(true);
    await expectOthersUnharmed(others);
    for (const c of [...others, roomWatcher, pub]) c.close();
  });
});

describe('a fault in the supervisor', () => {
  it('an engine method that throws for one frame answers that frame with internal; the connection and broker go on', async () => {
    const c = await TestClient.connect(url);
    const others = await Promise.all([1, 2].map(() => TestClient.connect(`${url}/t`)));
    const handle = broker.hub.handle.bind(broker.hub);
    broker.hub.handle = (link, frame) => {
      if (frame.op === 'pub' && frame.topic === 'boom') throw new Error('injected supervisor fault');
      handle(link, frame);
    };
    expect(await c.request({ op: 'pub', topic: 'boom', data: 1, id: 'x1' })).toMatchObject({ op: 'error', code: 'internal', id: 'x1' });
    expect(await c.request({ op: 'pub', topic: 't', data: 'fine' })).toMatchObject({ op: 'ack', delivered: 2 });
    expect(logs.some((l) => l.client === c.hello.client.id && /engine fault/.test(l.msg))).toBe(true);
    await expectOthersUnharmed(others);
    c.close();
    for (const o of others) o.close();
  });

  it('a join that throws for one client closes that client with 1011 and leaves no trace in the registry', async () => {
    const others = await Promise.all([1, 2].map(() => TestClient.connect(`${url}/t`)));
    const join = broker.hub.join.bind(broker.hub);
    broker.hub.join = (link: Link, req: JoinRequest) => {
      join(link, req);
      if (req.name === 'cursed') throw new Error('injected join fault'); // after registering: the worst case
    };
    const WebSocket = (await import('ws')).default;
    const ws = new WebSocket(`${url}/t?name=cursed`);
    const code = await new Promise<number>((r) => ws.on('close', (c) => r(c)));
    expect(code).toBe(1011);
    expect(broker.hub.inspect.findClient('cursed')).toBeUndefined();
    expect(broker.hub.inspect.reached('t')).toHaveLength(2);
    await expectOthersUnharmed(others);
    for (const o of others) o.close();
  });
});

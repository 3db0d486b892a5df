// `serve --inspect <url>`: the broker sends Stately inspection events to a bridge; here the bridge is a plain ws server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createActor, createMachine } from 'xstate';
import { StatelyInspector } from '../src/inspect/stately.js';
import { ActorTree } from '../src/actors/tree.js';
import type { AddressInfo } from 'node:net';
import { startBroker } from '../src/broker.js';
import { defaults } from '../src/config.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';

type Ev = Record<string, any> & { type: string; sessionId: string };

let receiver: WebSocketServer;
let events: Ev[] = [];
let broker: TestBroker;

beforeAll(async () => {
  receiver = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => receiver.once('listening', r));
  receiver.on('connection', (ws) => ws.on('message', (data) => events.push(JSON.parse(data.toString()) as Ev)));
  const port = (receiver.address() as AddressInfo).port;
  broker = await startTestBroker({ inspect: `ws://127.0.0.1:${port}`, idleMs: 150, idleGraceMs: 5000 });
  // The observer is registered once the bridge connection is open, announcing the supervisor.
  await until('the supervisor announced', () => events.some((e) => e.type === '@xstate.actor' && e.name === 'supervisor'));
});

afterAll(async () => {
  await broker.close();
  receiver.close();
});

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `connecting`, `online`, `idle`, `closing`, `closed` from a snapshot value. */
function word(value: unknown): string {
  if (typeof value === 'string') return value;
  return (value as { open?: { activity?: string } }).open?.activity ?? JSON.stringify(value);
}

describe('--inspect sends the actor system to a Stately bridge', () => {
  it('shows a connection actor, child of the supervisor, passing connecting → online → idle → online → closing → closed', async () => {
    const client = await TestClient.connect(`${broker.url}?name=watched`);
    const id = client.hello.client.id as string;
    const actor = await until('the @xstate.actor event of the connection', () => events.find((e) => e.type === '@xstate.actor' && e.name === id));
    const supervisor = events.find((e) => e.type === '@xstate.actor' && e.name === 'supervisor');
    expect(supervisor, 'the supervisor is announced too').toBeDefined();
    expect(actor.parentId).toBe(supervisor!.sessionId);
    expect(actor.rootId).toBe(supervisor!.sessionId);
    // The definition travels with the actor, so the inspector can draw the machine.
    expect(JSON.parse(actor.definition as string)).toMatchObject({ id: 'connection' });
    // Trimmed: the snapshot carries state and context, not the machine or its state nodes (a few KB per actor).
    expect(Object.keys(actor.snapshot).sort()).toEqual(['context', 'status', 'value']);
    expect(JSON.stringify(actor).length).toBeLessThan(10_000);

    // Let it go idle (idleMs 150), then wake it with a frame, then quit.
    await until('idle', () => events.some((e) => e.type === '@xstate.snapshot' && e.sessionId === actor.sessionId && word(e.snapshot.value) === 'idle'));
    expect(await client.request({ op: 'sub', topic: 'a/b' })).toMatchObject({ op: 'ack' });
    client.send({ op: 'quit' });
    await client.closed;
    await until('the final snapshot', () => events.some((e) => e.type === '@xstate.snapshot' && e.sessionId === actor.sessionId && e.snapshot.status === 'done'));

    const states = events
      .filter((e) => e.type === '@xstate.snapshot' && e.sessionId === actor.sessionId)
      .map((e) => word(e.snapshot.value))
      .filter((w, i, all) => i === 0 || all[i - 1] !== w);
    expect(states[0]).toBe('connecting');
    expect(states).toEqual(expect.arrayContaining(['online', 'idle', 'closing', 'closed']));
    expect(states.indexOf('online')).toBeLessThan(states.indexOf('idle'));
    expect(states.lastIndexOf('online')).toBeGreaterThan(states.indexOf('idle'));
    expect(states.indexOf('closing')).toBeLessThan(states.indexOf('closed'));
    expect(states.at(-1)).toBe('closed');
    // The lifecycle events that caused them are there, with the supervisor as the sender of ACCEPTED.
    const received = events.filter((e) => e.type === '@xstate.event' && e.sessionId === actor.sessionId);
    expect(received.map((e) => e.event.type)).toEqual(expect.arrayContaining(['xstate.init', 'ACCEPTED', 'QUIT']));
    expect(received.find((e) => e.event.type === 'ACCEPTED')!.sourceId).toBe(supervisor!.sessionId);
    // The supervisor heard the connection's CONNECT and its done event; links serialise as client info.
    const connect = events.find((e) => e.type === '@xstate.event' && e.event.type === 'CONNECT' && e.event.link?.id === id);
    expect(connect?.event.link).toEqual({ id, name: expect.any(String), addr: expect.any(String), transport: 'ws' });
    expect(events.some((e) => e.type === '@xstate.event' && e.event.type === 'CONNECTION_CLOSED' && e.event.link?.id === id)).toBe(true);
  });

  it('a publish burst never reaches the inspector (frames go from the reader to the engine); lifecycle events do; the supervisor context is a summary', async () => {
    const client = await TestClient.connect(broker.url);
    const id = client.hello.client.id as string;
    await until('the connection actor', () => events.find((e) => e.type === '@xstate.actor' && e.name === id));
    const big = 'x'.repeat(10_000);
    const burst = 300;
    for (let i = 0; i < burst; i++) client.send({ op: 'pub', topic: 'load/t', data: i === 0 ? big : i, id: i });
    await client.next((f) => f.op === 'ack' && f.id === burst - 1, 10_000);
    client.send({ op: 'quit' });
    await client.closed;
    const actor = events.find((e) => e.type === '@xstate.actor' && e.name === id)!;
    await until('the final snapshot', () => events.some((e) => e.type === '@xstate.snapshot' && e.sessionId === actor.sessionId && e.snapshot.status === 'done'));

    // Per-message work stays out of xstate: not one of the 300 publishes is an actor event.
    const ofClient = events.filter((e) => e.type === '@xstate.event' && e.sessionId === actor.sessionId).map((e) => e.event.type);
    // (ACTIVE at most once: on a loaded machine the client may sit idle for idleMs before the burst; its first frame wakes it.)
    expect(ofClient.filter((t) => !['xstate.init', 'ACCEPTED', 'QUIT', 'SOCKET_CLOSED', 'PONG', 'ACTIVE'].includes(t) && !t.startsWith('xstate.after'))).toEqual([]);
    expect(ofClient.filter((t) => t === 'ACTIVE').length).toBeLessThanOrEqual(1);
    // Lifecycle events are never sampled out.
    expect(ofClient).toContain('ACCEPTED');
    expect(ofClient).toContain('QUIT');
    const supSnap = events.findLast((e) => e.type === '@xstate.snapshot' && e.snapshot?.context?.hub);
    expect(supSnap?.snapshot.context.hub).toMatchObject({ connections: expect.any(Number), published: expect.any(Number) });
    expect(supSnap?.snapshot.context.log).toBeUndefined();
  });

  it('costs nothing when off: no inspector is created and no actor system gets an observer', async () => {
    const plain = await startTestBroker();
    try {
      expect(plain.observability.stately).toBeUndefined();
      expect(plain.actors.observed).toBe(false);
    } finally {
      await plain.close();
    }
  });

  it('listens only while the bridge is connected, and re-announces the live actors when it comes back', async () => {
    const bridge = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((r) => bridge.once('listening', r));
    const port = (bridge.address() as AddressInfo).port;
    await new Promise<void>((r) => bridge.close(() => r())); // nobody there yet
    const logs: { msg: string }[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
        done();
      },
    });
    const config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, inspect: `ws://127.0.0.1:${port}` };
    const late = await startBroker(config, { log: pino({ level: 'info' }, sink), tcpPort: 0 });
    try {
      const client = await TestClient.connect(`ws://127.0.0.1:${late.port}/ws`);
      const id = client.hello.client.id as string;
      // The broker tried the bridge and found nobody: not listening.
      await until('the bridge found unreachable', () => logs.some((l) => /inspector bridge unreachable/.test(l.msg)) || undefined);
      expect(late.observability.stately!.listening).toBe(false);
      // The bridge starts late: within the 2 s retry the broker connects and announces both actors.
      const seen: Ev[] = [];
      const again = new WebSocketServer({ port, host: '127.0.0.1' });
      again.on('connection', (ws) => ws.on('message', (d) => seen.push(JSON.parse(d.toString()) as Ev)));
      await until('the late announcements', () => seen.some((e) => e.type === '@xstate.actor' && e.name === id), 6000);
      expect(late.observability.stately!.listening).toBe(true);
      const sup = seen.find((e) => e.type === '@xstate.actor' && e.name === 'supervisor');
      const conn = seen.find((e) => e.type === '@xstate.actor' && e.name === id)!;
      expect(conn.parentId).toBe(sup!.sessionId);
      expect(word(conn.snapshot.value)).toBe('online');
      // The bridge goes away: the observer is removed again.
      for (const ws of again.clients) ws.terminate();
      await new Promise<void>((r) => again.close(() => r()));
      await until('the observer removed', () => late.observability.stately!.listening === false || undefined);
      client.close();
    } finally {
      await late.close();
    }
  });
});

describe('inspector bridge outages in the log', () => {
  it('warns once per outage, however many retries, and says once at info when the bridge is back', async () => {
    const logs: { level: number; msg: string }[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
        done();
      },
    });
    const bridge = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((r) => bridge.once('listening', r));
    const port = (bridge.address() as AddressInfo).port;
    await new Promise<void>((r) => bridge.close(() => r()));
    const root = createActor(createMachine({ id: 'root' })).start();
    const inspector = new StatelyInspector({ url: `ws://127.0.0.1:${port}`, log: pino({ level: 'debug' }, sink), actors: new ActorTree(root), retryMs: 20 });
    const warns = () => logs.filter((l) => l.level === 40);
    const retries = () => logs.filter((l) => l.level === 20 && /unreachable/.test(l.msg)).length;
    try {
      // Outage 1: the bridge was never there; several retries, one warning.
      await until('three retries', () => retries() >= 3 || undefined);
      expect(warns()).toHaveLength(1);
      const up = new WebSocketServer({ port, host: '127.0.0.1' });
      await until('connected', () => inspector.listening || undefined);
      expect(logs.filter((l) => l.level === 30 && /inspector bridge connected/.test(l.msg))).toHaveLength(1);
      // Outage 2: the bridge goes away; one more warning, whatever the number of retries.
      for (const ws of up.clients) ws.terminate();
      await new Promise<void>((r) => up.close(() => r()));
      const before = retries();
      await until('three more retries', () => retries() >= before + 3 || undefined);
      expect(warns()).toHaveLength(2);
      const again = new WebSocketServer({ port, host: '127.0.0.1' });
      await until('reconnected', () => inspector.listening || undefined);
      expect(logs.filter((l) => l.level === 30 && /reachable again/.test(l.msg))).toHaveLength(1);
      expect(warns()).toHaveLength(2);
      inspector.stop();
      await new Promise<void>((r) => again.close(() => r()));
    } finally {
      inspector.stop();
      root.stop();
    }
  });
});

describe('--inspect flag', () => {
  it('takes an optional URL: alone it means the bridge on 8090; a bad URL is a clear config error', async () => {
    const { parseConfig, validateConfig, ConfigError } = await import('../src/config.js');
    expect(parseConfig([]).inspect).toBeUndefined();
    expect(parseConfig(['--inspect']).inspect).toBe('ws://localhost:8090');
    expect(parseConfig(['--inspect', '--port', '9000'])).toMatchObject({ inspect: 'ws://localhost:8090', port: 9000 });
    expect(parseConfig(['--inspect', 'ws://10.0.0.5:9001']).inspect).toBe('ws://10.0.0.5:9001');
    expect(parseConfig(['--inspect=ws://h:1']).inspect).toBe('ws://h:1');
    expect(parseConfig([], { SWITCHBOARD_INSPECT: 'ws://h:2' }).inspect).toBe('ws://h:2');
    expect(() => validateConfig(parseConfig(['--inspect', 'localhost:8090']))).toThrow(ConfigError);
  });
});

// The conformance checker against real brokers: the real one conforms (also with a stranger on the
// broker), a broker with a planted bug is caught and the scenario shrunk, and the CLI's exit codes.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaults, type Config } from '../src/config.js';
import { startBroker, type Broker } from '../src/broker.js';
import { createLogger } from '../src/log.js';
import { formatReport, runCheck } from '../src/check/checker.js';
import { check } from '../src/check/command.js';
import { difference } from '../src/check/compare.js';
import { Fleet } from '../src/check/fleet.js';
import { Probe, type Frame } from '../src/check/probe.js';
import { ProtocolModel } from '../src/protocol/model.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';
import { LineClient } from './helpers/line-client.js';
import { StickyPresenceHub } from './helpers/planted.js';
import { LagProxy } from './helpers/lag-proxy.js';
import { cliArgs } from './helpers/cli.js';

let broker: TestBroker;
let planted: Broker;
let plantedUrl: string;
/** argv of the replay line the planted-bug test printed. */
let plantedReplay: string[] | undefined;

beforeAll(async () => {
  // A small history, so `sub` with `since` also meets forgotten messages (recovered: false).
  broker = await startTestBroker({ historySize: 3 });
  const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent' };
  planted = await startBroker(config, { log: createLogger('silent', false), hubFactory: (o) => new StickyPresenceHub(o) });
  plantedUrl = `ws://127.0.0.1:${planted.port}/ws`;
});
afterAll(async () => {
  await broker.close();
  await planted.close();
});

/** Runs the checker with seed after seed (tcp on, 5 scenarios each) for `ms`, and at least `atLeast` scenarios; all must conform. */
async function selfTest(url: string, ms: number, atLeast: number): Promise<number> {
  let runs = 0;
  for (let seed = 1, until = Date.now() + ms; Date.now() < until || runs < atLeast; seed++) {
    const options = { url, runs: 5, seed, maxCommands: 25, exclusive: true, historySize: 3, tcp: true };
    const report = await runCheck(options);
    expect(report.ok, formatReport(report, options)).toBe(true);
    runs += report.runs;
  }
  return runs;
}

describe('switchboard check', () => {
  it('finds the real broker conforming to the model', async () => {
    const options = { url: broker.url, runs: 80, exclusive: true, historySize: 3 };
    const report = await runCheck(options);
    expect(report.ok, formatReport(report, options)).toBe(true);
    expect(report.runs).toBe(80);
    // The scenarios really exercised the protocol, not just connects.
    for (const op of ['sub', 'unsub', 'pub', 'send', 'who', 'rename', 'ping', 'quit', 'drop', 'bad']) expect(report.performed[op]).toBeGreaterThan(0);
  });

  it('also conforms with clients over TCP JSON lines (--tcp)', async () => {
    const options = { url: broker.url, tcp: true, runs: 40, exclusive: true, historySize: 3 };
    const report = await runCheck(options);
    expect(report.ok, formatReport(report, options)).toBe(true);
    expect(report.performed['connect tcp']).toBeGreaterThan(0);
  });

  it('a --tcp run leaves the broker\'s chat room alone: a nc user and a presence watcher of chat see nothing of it', async () => {
    const nc = await LineClient.connect(broker.tcpPort);
    await nc.next(`[${nc.addr}]${nc.addr}: login`);
    const watcher = await TestClient.connect(`${broker.url}?name=watcher`);
    await watcher.request({ op: 'sub', topic: 'chat', presence: true });
    // Barriers (ping → pong on each connection): what either of them received so far is not the check's.
    const ncLines = async (id: string) => {
      nc.send(JSON.stringify({ op: 'ping', id }));
      await nc.nextJson((f) => f.op === 'pong' && f.id === id);
      return nc.all.length;
    };
    const ncFrom = await ncLines('before');
    await watcher.request({ op: 'ping', id: 'before' });
    const watcherFrom = watcher.all.length;

    const options = { url: broker.url, tcp: true, runs: 20, historySize: 3 };
    const report = await runCheck(options);
    expect(report.ok, formatReport(report, options)).toBe(true);
    expect(report.performed['connect tcp']).toBeGreaterThan(5);

    const ncTo = await ncLines('after');
    await watcher.request({ op: 'ping', id: 'after' });
    // Only the barrier's own pong line arrived in between; nothing else from the check reached either of them.
    expect(nc.all.slice(ncFrom, ncTo).filter((l) => !l.includes('"id":"after"'))).toEqual([]);
    expect(watcher.all.slice(watcherFrom).filter((f) => f.id !== 'after')).toEqual([]);
    nc.close();
    watcher.close();
  });

  it('never raises a false alarm when frames of different clients reach the broker out of order (a lagging network)', { timeout: 60_000 }, async () => {
    // Each connection through the proxy lags by 0, 15 or 30 ms: a command sent as a notification can reach the broker
    // after another client's barrier ping. This scenario (A publishes `a` without id; B holds `a`) failed on one node
    // in every replay while the settle barrier pinged every client at once.
    const proxy = await LagProxy.start(broker.port);
    try {
      const replay = { url: proxy.url(), runs: 1, seed: 2, path: '1:3:2:5:10:5:7:6:6:6:12:9:9:9:9:6@IQABIOA/E:qG', exclusive: true, historySize: 3, tcp: true };
      for (let i = 0; i < 4; i++) {
        const report = await runCheck(replay);
        expect(report.ok, formatReport(report, replay)).toBe(true);
        // Still that scenario (fast-check may run it more than once): two connects, one sub, one pub.
        const { connect, sub, pub, ...other } = report.performed;
        expect({ other, connect, sub }).toEqual({ other: {}, connect: 2 * pub!, sub: pub });
      }
      // Random scenarios through the lag too, for a second.
      const runs = await selfTest(proxy.url(), 1000, 4);
      console.info(`checker self-test through a lagging proxy: ${runs} scenarios conformed`);
    } finally {
      await proxy.close();
    }
  });

  it("the checker's self-test, many times: a loop of seeds against the real broker for a second, at least 100 scenarios", { timeout: 60_000 }, async () => {
    const runs = await selfTest(broker.url, 1000, 100);
    console.info(`checker self-test: ${runs} scenarios conformed`);
  });

  it('paces one client\'s renames under the default --rename-rate: ten in a row conform, none is refused rate_limited', { timeout: 30_000 }, async () => {
    // The broker of this file runs with the default rename limit (5 a second per connection), which the model does
    // not know: before the pacing, a seed that renamed one client six times in a row was a false alarm.
    const observer = await Probe.connect(broker.url, 3000);
    const fleet = new Fleet({ exclusive: false, timeoutMs: 3000, observer: async () => observer, transports: new Set(['ws']), nodes: [{ ws: broker.url }] });
    const model = new ProtocolModel({ historySize: 3, room: fleet.room });
    try {
      await fleet.perform({ op: 'connect', slot: 0 }, model);
      await fleet.perform({ op: 'connect', slot: 1 }, model);
      await fleet.perform({ op: 'sub', slot: 1, topic: 'r', presence: true }, model);
      await fleet.perform({ op: 'sub', slot: 0, topic: 'r' }, model);
      for (let i = 0; i < 10; i++) await fleet.perform({ op: 'rename', slot: 0, name: `n${i}` }, model);
      expect(model.client(0)?.name).toBe(fleet.name('n9'));
      expect(fleet.transcript.filter((l) => l.includes('rate_limited'))).toEqual([]);
    } finally {
      fleet.close();
      observer.close();
    }
  });

  it('copes with a client it did not create subscribed to everything', async () => {
    const stranger = await TestClient.connect(broker.url);
    await stranger.request({ op: 'sub', topic: '#', presence: true });
    const options = { url: broker.url, runs: 30, historySize: 3 };
    const report = await runCheck(options);
    expect(report.ok, formatReport(report, options)).toBe(true);
    // The stranger really was there: it saw the checker's traffic.
    expect(stranger.all.some((f) => f.op === 'msg')).toBe(true);
    stranger.close();
  });

  it('catches a planted bug (re-sub without presence keeps presence) and shrinks it to a few commands', { timeout: 60_000 }, async () => {
    // Seed fixed so this test is deterministic; most seeds find it within a few hundred scenarios.
    const options = { url: plantedUrl, runs: 300, seed: 6, exclusive: true };
    const report = await runCheck(options);
    const printed = formatReport(report, options);
    console.info(printed);
    plantedReplay = /Replay: switchboard check (.*)/.exec(printed)?.[1]?.split(' ');
    expect(report.ok).toBe(false);
    expect(report.path).toMatch(/^\d+(:\d+)*@/);
    expect(report.transcript!.length).toBeLessThanOrEqual(5);
    expect(report.transcript!.join('\n')).toMatch(/sub .*"presence":true/);
    expect(report.failure).toMatch(/received frames that differ from the model/);
    expect(report.failure).toMatch(/"op":"event"/);
    // The printed seed and path replay exactly the shrunk scenario, without searching again.
    const replay = await runCheck({ ...options, path: report.path });
    expect(replay.ok).toBe(false);
    expect(replay.runs).toBe(1);
    expect(replay.transcript!.map((l) => l.replace(/chk\w+/g, 'P').replace(/:\d+\//, '/'))).toEqual(
      report.transcript!.map((l) => l.replace(/chk\w+/g, 'P').replace(/:\d+\//, '/')),
    );
  });

  it('exits 0 on conformance, 1 on a difference, 2 on bad usage', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      expect(await check(['--url', broker.url, '--runs', '10', '--history', '3'])).toBe(0);
      // The replay line printed by the planted-bug test, run as the user would paste it.
      expect(plantedReplay).toBeDefined();
      expect(await check(plantedReplay!)).toBe(1);
      expect(log.mock.calls.flat().join('\n')).toMatch(/Replay: switchboard check --url \S+ --seed=6 --path \d+(:\d+)*@\S+ --exclusive/);
      // A negative seed (fast-check draws them) is printed so that it replays: `--seed -5` reads as an option.
      const negative = formatReport({ ok: false, runs: 1, seed: -5, path: '0', transcript: [], failure: 'x', performed: {}, messages: {} }, { url: broker.url, runs: 1 });
      const flags = /Replay: switchboard check (.*)/.exec(negative)![1]!.split(' ').filter((f) => !f.startsWith('--path') && f !== '0');
      expect(flags).toContain('--seed=-5');
      expect(await check([...flags, '--runs', '2', '--history', '3'])).toBe(0);
      // Without --url: SWITCHBOARD_WS_URL, else the local broker's ws://127.0.0.1:8080/ws (named in --help).
      process.env.SWITCHBOARD_WS_URL = broker.url;
      try {
        expect(await check(['--runs', '3'])).toBe(0);
      } finally {
        delete process.env.SWITCHBOARD_WS_URL;
      }
      await check(['--help']);
      expect(log.mock.calls.flat().join('\n')).toContain('ws://127.0.0.1:8080/ws');
      expect(await check(['--url', 'http://x'])).toBe(2);
      expect(await check(['--url', broker.url, '--runs', 'many'])).toBe(2);
      expect(await check(['--url', 'ws://127.0.0.1:1/ws'])).toBe(2);
      expect(await check(['--url', broker.url, '--tcp', 'nowhere'])).toBe(2);
      // --tcp against a broker whose TCP line protocol is off: no /lines endpoint, a clear message, not a counterexample.
      expect(await check(['--url', plantedUrl, '--tcp'])).toBe(2);
      expect(error.mock.calls.flat().join('\n')).toMatch(/\/lines\?room=\S+ answered HTTP 404/);
      expect(await check(['--url', broker.url, '--runs', '5', '--history', '3', '--tcp'])).toBe(0);
    } finally {
      log.mockRestore();
      error.mockRestore();
    }
  });

  it('as a command, a broker without the line protocol is one message and exit 2, not a hang', { timeout: 30_000 }, async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [...cliArgs(), 'check', '--url', plantedUrl, '--tcp'], { cwd: new URL('..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => (child.kill(), resolve(-1)), 20_000);
      child.on('exit', (c) => (clearTimeout(timer), resolve(c)));
    });
    expect(code, err).toBe(2);
    expect(err).toMatch(/^switchboard check: .*\/lines\?room=\S+ answered HTTP 404/);
  });

  // Outside the random scenarios (their ping barriers keep everyone active): the model's `timeout` against a real idle close.
  it('an idle client is closed with 4000 and its presence watchers hear timeout, as the model says', async () => {
    const idle = await startTestBroker({ idleMs: 400, idleGraceMs: 200, idleClose: 'all' });
    const model = new ProtocolModel({ historySize: 100 });
    const [a, b] = [await Probe.connect(idle.url, 3000), await Probe.connect(idle.url, 3000)];
    const ask = async (p: Probe, slot: number, frame: { op: 'sub'; id: string; topic: string; presence?: boolean }) => {
      p.send(frame);
      await p.waitFor((f) => f.id === frame.id, 3000, frame.id);
      model.frame(slot, frame);
    };
    try {
      for (const [slot, p] of [a, b].entries()) {
        const hello = p.frames[0]!.client as { id: string; addr: string };
        model.connect(slot, { id: hello.id, addr: hello.addr, transport: 'ws' });
      }
      await ask(a, 0, { op: 'sub', id: 's1', topic: 'idle/x', presence: true });
      await ask(b, 1, { op: 'sub', id: 's2', topic: 'idle/x' });
      // Barrier: B's join reaches A on A's connection, proven arrived by A's pong.
      a.send({ op: 'ping', id: 'barrier' });
      const pong = await a.waitFor((f) => f.id === 'barrier', 3000, 'barrier pong');
      const from = a.frames.indexOf(pong) + 1;
      // A stays active; B says nothing until the broker closes it.
      const keepAlive = setInterval(() => a.send({ op: 'ping', id: 'alive' }), 50);
      const code = await b.closed.finally(() => clearInterval(keepAlive));
      expect(code).toBe(4000);
      a.send({ op: 'ping', id: 'last' });
      await a.waitFor((f) => f.id === 'last', 3000, 'last pong');
      const seen = a.frames.slice(from).filter((f: Frame) => f.op !== 'pong');
      // The model has no clock: the `idle` event that precedes the close is the broker's own (docs/protocol.md, Presence).
      const { id, name, transport } = b.frames[0]!.client as Record<string, unknown>;
      const idleEvent = { op: 'event', event: 'idle', client: { id, name, transport }, topic: 'idle/x' };
      const expected = [idleEvent, ...(model.disconnect(1, 'timeout').frames.get(0) ?? [])];
      expect(expected).toHaveLength(2);
      const ids = new Set([a, b].map((p) => (p.frames[0]!.client as { id: string }).id));
      expect(difference(expected, seen, { ours: ids, exclusive: true })).toBeNull();
    } finally {
      a.close();
      b.close();
      await idle.close();
    }
  });
});

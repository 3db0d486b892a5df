// The conformance checker with clients on every transport in one scenario (--transports ws,tcp,sse,mqtt): a message
// published on any transport must reach the matching subscribers on every transport exactly once, in order, and
// `who` and presence must show everyone. The real broker conforms; an MQTT subscriber behind a proxy that drops one
// PUBLISH per connection is reported, shrunk to the few commands that show it; an MQTT takeover is modelled.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { formatReport, runCheck, type CheckOptions } from '../../src/check/checker.js';
import { check } from '../../src/check/command.js';
import { Fleet } from '../../src/check/fleet.js';
import { Probe } from '../../src/check/probe.js';
import { ProtocolModel } from '../../src/protocol/model.js';
import { PacketFramer } from '../../src/transports/mqtt/framer.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { LagProxy } from '../helpers/lag-proxy.js';

let broker: TestBroker;
let mqttUrl: string;
beforeAll(async () => {
  // A small history, so resumes also meet trimmed history (recovered: false).
  broker = await startTestBroker({ historySize: 3, mqttPort: 0 });
  mqttUrl = `mqtt://127.0.0.1:${broker.mqttPort}`;
});
afterAll(async () => {
  await broker.close();
});

const ALL = ['ws', 'tcp', 'sse', 'mqtt'] as const;

/** The planted fault: of what the broker sends one MQTT connection, its first PUBLISH never arrives. */
function dropFirstPublish(): (chunk: Buffer) => Buffer {
  const framer = new PacketFramer(16 * 1024 * 1024);
  let dropped = false;
  return (chunk) => {
    const passed: Buffer[] = [];
    for (const e of framer.push(chunk)) {
      if (e.kind !== 'packet') continue;
      if (!dropped && e.packet[0]! >> 4 === 3) dropped = true;
      else passed.push(e.packet);
    }
    return Buffer.concat(passed);
  };
}

describe('switchboard check --transports ws,tcp,sse,mqtt', () => {
  it('finds the real broker conforming with clients of all four transports in each scenario', { timeout: 60_000 }, async () => {
    // A fixed seed: the commands (and so the counts below) are the same every run; what the broker answers is not.
    const options: CheckOptions = { url: broker.url, transports: [...ALL], mqtt: [mqttUrl], runs: 60, seed: 23, exclusive: true, historySize: 3 };
    const report = await runCheck(options);
    console.info(formatReport(report, options));
    expect(report.ok, formatReport(report, options)).toBe(true);
    const total = Object.values(report.performed).reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(300);
    for (const kind of ['connect', 'connect tcp', 'connect sse', 'connect mqtt', 'sub mqtt', 'pub mqtt', 'unsub mqtt', 'quit mqtt', 'drop mqtt', 'who', 'who sse']) {
      expect(report.performed[kind], kind).toBeGreaterThan(0);
    }
    // Messages crossed transports both ways: each transport received from another, and its publishes reached another.
    const crossed = Object.entries(report.messages).filter(([key]) => key.split('→')[0] !== key.split('→')[1]);
    for (const t of ALL) {
      expect(crossed.some(([key]) => key.endsWith(`→${t}`)), `a message to ${t} from another transport`).toBe(true);
      expect(crossed.some(([key]) => key.startsWith(`${t}→`)), `a message from ${t} to another transport`).toBe(true);
    }
  });

  it('reports an MQTT subscriber that misses one PUBLISH, shrunk to connect, subscribe and publish', { timeout: 60_000 }, async () => {
    const proxy = await LagProxy.start(broker.mqttPort!, 0, 1, dropFirstPublish);
    try {
      const options: CheckOptions = { url: broker.url, transports: [...ALL], mqtt: [`mqtt://127.0.0.1:${proxy.port}`], runs: 100, exclusive: true, historySize: 3 };
      const report = await runCheck(options);
      const printed = formatReport(report, options);
      expect(report.ok, printed).toBe(false);
      // The difference is a message the model expected at an MQTT client, and it did not come.
      const [expected, received] = report.failure!.split('\n  received:\n');
      expect(expected).toMatch(/received frames that differ from the model/);
      const msgs = (text = '') => text.split('\n').filter((l) => /"op":"msg".*"qos":[01]/.test(l)).length;
      expect(msgs(received)).toBeLessThan(msgs(expected));
      expect(report.transcript!.some((l) => / connect \{"transport":"mqtt"/.test(l))).toBe(true);
      // Shrunk: an MQTT connect, its subscribe, a publish (and at most a couple of commands the shrink kept).
      expect(report.transcript!.length).toBeLessThanOrEqual(6);
      expect(printed).toMatch(/Replay: switchboard check --url \S+ --seed=-?\d+ --path \S+ --exclusive --history 3 --transports ws,tcp,sse,mqtt --mqtt-url mqtt:\/\/127\.0\.0\.1:\d+/);
    } finally {
      await proxy.close();
    }
  });

  it('models an MQTT takeover: a client id that is a live MQTT client\'s name closes that client, and its watchers hear it leave', async () => {
    const observer = await Probe.connect(broker.url, 3000);
    const fleet = new Fleet({ exclusive: true, timeoutMs: 3000, observer: async () => observer, transports: new Set(ALL), nodes: [{ ws: broker.url, mqtt: mqttUrl }] });
    const model = new ProtocolModel({ historySize: 3, room: fleet.room });
    try {
      await fleet.perform({ op: 'connect', slot: 0, transport: 'mqtt', name: 'ann' }, model);
      await fleet.perform({ op: 'sub', slot: 0, topic: 'a/#', qos: 1 }, model);
      await fleet.perform({ op: 'connect', slot: 1 }, model);
      await fleet.perform({ op: 'sub', slot: 1, topic: 'a/#', presence: true }, model);
      await fleet.perform({ op: 'connect', slot: 2, transport: 'mqtt', name: 'ann' }, model);
      expect(model.isLive(0)).toBe(false);
      expect(model.client(2)).toMatchObject({ name: fleet.name('ann'), transport: 'mqtt', live: true });
      // Both MQTT clients were checked against the model: the new one gets what the old one no longer does.
      await fleet.perform({ op: 'sub', slot: 2, topic: 'a/b', qos: 0 }, model);
      await fleet.perform({ op: 'pub', slot: 1, topic: 'a/b', data: { k: [1, 'x'] } }, model);
      await fleet.perform({ op: 'who', slot: 1 }, model);
      expect(fleet.messages.get('ws→mqtt')).toBe(1);
    } finally {
      fleet.close();
      observer.close();
    }
  });

  it('models the takeover of an MQTT client id that is no name (c7): by client id, on the same node', async () => {
    const observer = await Probe.connect(broker.url, 3000);
    const fleet = new Fleet({ exclusive: true, timeoutMs: 3000, observer: async () => observer, transports: new Set(ALL), nodes: [{ ws: broker.url, mqtt: mqttUrl }] });
    const model = new ProtocolModel({ historySize: 3, room: fleet.room });
    try {
      await fleet.perform({ op: 'connect', slot: 0, transport: 'mqtt', name: 'c7' }, model);
      await fleet.perform({ op: 'connect', slot: 1 }, model);
      await fleet.perform({ op: 'connect', slot: 2, transport: 'mqtt', name: 'c7' }, model);
      expect(model.isLive(0)).toBe(false);
      expect(model.client(2)).toMatchObject({ transport: 'mqtt', live: true });
      // What the broker lists is what the model says: the first c7 is gone.
      await fleet.perform({ op: 'who', slot: 1 }, model);
    } finally {
      fleet.close();
      observer.close();
    }
  });

  it('models MQTT delivery at the lower of the publisher\'s and the subscription\'s QoS', async () => {
    const observer = await Probe.connect(broker.url, 3000);
    const fleet = new Fleet({ exclusive: true, timeoutMs: 3000, observer: async () => observer, transports: new Set(ALL), nodes: [{ ws: broker.url, mqtt: mqttUrl }] });
    const model = new ProtocolModel({ historySize: 3, room: fleet.room });
    try {
      await fleet.perform({ op: 'connect', slot: 0, transport: 'mqtt' }, model);
      await fleet.perform({ op: 'sub', slot: 0, topic: 'q/#', qos: 1 }, model);
      await fleet.perform({ op: 'connect', slot: 1, transport: 'mqtt' }, model);
      await fleet.perform({ op: 'connect', slot: 2 }, model);
      // Each step is compared with what the broker sent: a QoS 0 notification arrives at QoS 0, the rest at QoS 1.
      await fleet.perform({ op: 'pub', slot: 1, topic: 'q/a', data: 'zero', notify: true }, model);
      await fleet.perform({ op: 'pub', slot: 1, topic: 'q/a', data: 'one' }, model);
      await fleet.perform({ op: 'pub', slot: 2, topic: 'q/a', data: 'web' }, model);
      expect(fleet.messages.get('mqtt→mqtt')).toBe(2);
      expect(fleet.messages.get('ws→mqtt')).toBe(1);
    } finally {
      fleet.close();
      observer.close();
    }
  });

  it('the CLI takes --transports and --mqtt-url, and says when a transport is unknown or the MQTT listener missing', { timeout: 30_000 }, async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      expect(await check(['--url', broker.url, '--transports', 'ws,mqtt', '--mqtt-url', mqttUrl, '--runs', '3', '--history', '3'])).toBe(0);
      expect(log.mock.calls.flat().join('\n')).toMatch(/3 scenarios conform to the model/);
      expect(await check(['--url', broker.url, '--transports', 'ws,smtp'])).toBe(2);
      expect(error.mock.calls.flat().join('\n')).toMatch(/--transports takes a comma-separated list of ws, tcp, sse, mqtt, got 'ws,smtp'/);
      // The broker's HTTP port speaks no MQTT: no CONNACK comes.
      expect(await check(['--url', broker.url, '--transports', 'mqtt', '--mqtt-url', `mqtt://127.0.0.1:${broker.port}`, '--timeout-ms', '500'])).toBe(2);
      expect(error.mock.calls.flat().join('\n')).toMatch(/CONNACK/);
    } finally {
      log.mockRestore();
      error.mockRestore();
    }
  });
});

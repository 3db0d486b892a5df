// The model-based checker against a two-node cluster: the scenario's clients alternate between the nodes, so
// every pub, sub, presence event, who, rename and send the model predicts crosses Redis about half the time, and
// with all four transports (WebSocket, TCP lines, SSE, MQTT) messages cross nodes and transports at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatReport, runCheck } from '../../src/check/checker.js';
import { check } from '../../src/check/command.js';
import { Fleet } from '../../src/check/fleet.js';
import { Probe } from '../../src/check/probe.js';
import { ProtocolModel } from '../../src/protocol/model.js';
import { requireRedis, startNode, TestRedis } from './redis.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('cluster check');

describe.skipIf(!run)('switchboard check against a two-node cluster', () => {
  let redis: TestRedis;
  let a: TestBroker;
  let b: TestBroker;
  beforeAll(async () => {
    redis = await TestRedis.start();
    // A small history, so resumes also meet trimmed history (recovered: false).
    a = await startNode(redis, { historySize: 3, mqttPort: 0 });
    b = await startNode(redis, { historySize: 3, mqttPort: 0 });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('conforms to the model with clients spread over both nodes (WebSocket and TCP JSON lines)', async () => {
    const options = { url: a.url, more: [b.url], runs: 40, exclusive: true, historySize: 3, tcp: true };
    const report = await runCheck(options);
    expect(report.ok, formatReport(report, options)).toBe(true);
    for (const op of ['sub', 'pub', 'send', 'who', 'rename', 'drop']) expect(report.performed[op]).toBeGreaterThan(0);
  }, 60_000);

  it('conforms with WebSocket, TCP, SSE and MQTT clients spread over both nodes', async () => {
    const options = { url: a.url, more: [b.url], transports: ['ws', 'tcp', 'sse', 'mqtt'] as const, mqtt: [a, b].map((n) => `mqtt://127.0.0.1:${n.mqttPort}`), runs: 15, seed: 11, exclusive: true, historySize: 3 };
    // A fixed seed: the kinds counted below are the scenario's, not chance's (a random one once drew no MQTT publish).
    const report = await runCheck({ ...options, transports: [...options.transports] });
    expect(report.ok, formatReport(report, { ...options, transports: [...options.transports] })).toBe(true);
    for (const kind of ['connect mqtt', 'connect sse', 'sub mqtt', 'pub mqtt']) expect(report.performed[kind], kind).toBeGreaterThan(0);
  }, 60_000);

  it('models an MQTT takeover across nodes: the client id of an MQTT client on the other node closes it there (docs/mqtt.md)', async () => {
    const observer = await Probe.connect(a.url, 3000);
    const nodes = [a, b].map((n) => ({ ws: n.url, mqtt: `mqtt://127.0.0.1:${n.mqttPort}` }));
    const fleet = new Fleet({ exclusive: true, timeoutMs: 3000, observer: async () => observer, transports: new Set(['ws', 'mqtt']), nodes });
    const model = new ProtocolModel({ historySize: 3, room: fleet.room });
    try {
      // Connections alternate between the nodes: A on a, B (a presence watcher) on b, C on a takes over A on the same
      // node; then a fourth connect, on b, with the same client id takes over C across nodes (into A's free slot).
      await fleet.perform({ op: 'connect', slot: 0, transport: 'mqtt', name: 'ann' }, model);
      await fleet.perform({ op: 'sub', slot: 0, topic: 'a/#', qos: 1 }, model);
      await fleet.perform({ op: 'connect', slot: 1, topics: ['a/#'] }, model);
      await fleet.perform({ op: 'sub', slot: 1, topic: 'a/#', presence: true }, model);
      await fleet.perform({ op: 'connect', slot: 2, transport: 'mqtt', name: 'ann' }, model);
      expect(model.isLive(0)).toBe(false);
      expect(model.client(2)).toMatchObject({ name: fleet.name('ann'), live: true });
      await fleet.perform({ op: 'sub', slot: 2, topic: 'a/#', qos: 0 }, model);
      await fleet.perform({ op: 'connect', slot: 0, transport: 'mqtt', name: 'ann' }, model);
      expect(model.isLive(2)).toBe(false);
      expect(model.client(0)).toMatchObject({ name: fleet.name('ann'), live: true });
      await fleet.perform({ op: 'sub', slot: 0, topic: 'a/b', qos: 1 }, model);
      await fleet.perform({ op: 'pub', slot: 1, topic: 'a/b', data: 'across' }, model);
      expect(fleet.messages.get('ws→mqtt')).toBe(1);
    } finally {
      fleet.close();
      observer.close();
    }
  }, 30_000);

  it('the CLI takes --url once per node', async () => {
    const code = await check(['--url', a.url, '--url', b.url, '--runs', '5', '--history', '3']);
    expect(code).toBe(0);
  }, 30_000);
});

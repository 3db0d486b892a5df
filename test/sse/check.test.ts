// The conformance checker with Server-Sent Events clients in its random scenarios (--sse): streams that connect with
// names and filters, subscribe, publish, quit and drop over POST beside WebSocket and TCP clients, each step's frames
// compared with the protocol model. A bug planted for event streams only is found with --sse and not without.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatReport, runCheck } from '../../src/check/checker.js';
import { startBroker, type Broker } from '../../src/broker.js';
import { MemoryEngine } from '../../src/engine/memory.js';
import type { Link } from '../../src/actors/link.js';
import { ackFrame, type FrameOf } from '../../src/protocol/frames.js';
import { defaults, type Config } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

/** The planted bug: a `sub` request from an event stream is acknowledged and never made. */
class DeafStreamHub extends MemoryEngine<Link> {
  override sub(link: Link, frame: FrameOf<'sub'>): void {
    if (link.transport === 'sse' && frame.id !== undefined && frame.since === undefined && frame.presence !== true) {
      link.send(ackFrame(frame.id, { life: this.life }));
      return;
    }
    super.sub(link, frame);
  }
}

let broker: TestBroker;
let planted: Broker;
beforeAll(async () => {
  broker = await startTestBroker({ historySize: 3 });
  const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', historySize: 3 };
  planted = await startBroker(config, { log: createLogger('silent', false), hubFactory: (o) => new DeafStreamHub(o) });
});
afterAll(async () => {
  await broker.close();
  await planted.close();
});

describe('switchboard check --sse', () => {
  it('conforms with SSE, TCP and WebSocket clients mixed', { timeout: 120_000 }, async () => {
    // A fixed seed: the count of stream connects below is the scenario's, not chance's (random seeds gave 5 or fewer
    // about once in 200 runs); the checker's own random runs live in check:long.
    const options = { url: broker.url, sse: true, tcp: true, runs: 15, seed: 2312, exclusive: true, historySize: 3 };
    const report = await runCheck(options);
    expect(report.ok, formatReport(report, options)).toBe(true);
    expect(report.performed['connect sse']).toBeGreaterThan(5);
  });

  it('finds a bug planted for event streams only, which WebSocket-only runs cannot see', { timeout: 120_000 }, async () => {
    const url = `ws://127.0.0.1:${planted.port}/ws`;
    const withSse = await runCheck({ url, sse: true, runs: 40, seed: 7, exclusive: true, historySize: 3 });
    expect(withSse.ok).toBe(false);
    expect(withSse.failure).toMatch(/received frames that differ from the model/);
    expect(withSse.transcript?.some((l) => l.includes('/sse?') || l.startsWith('sse '))).toBe(true);
    const withoutSse = await runCheck({ url, runs: 15, seed: 7, exclusive: true, historySize: 3 });
    expect(withoutSse.ok).toBe(true);
  });
});

// The conformance checker with Server-Sent Events clients in its random scenarios (--sse): streams that connect with
// names and filters, subscribe, publish, resume, quit and drop over POST beside WebSocket and TCP clients, each
// step's frames compared with the protocol model.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatReport, runCheck } from '../../src/check/checker.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ historySize: 3 });
});
afterAll(() => broker.close());

describe('switchboard check --sse', () => {
  it('conforms with SSE, TCP and WebSocket clients mixed', { timeout: 120_000 }, async () => {
    const options = { url: broker.url, sse: true, tcp: true, runs: 15, exclusive: true, historySize: 3 };
    const report = await runCheck(options);
    expect(report.ok, formatReport(report, options)).toBe(true);
    expect(report.performed['connect sse']).toBeGreaterThan(5);
  });
});

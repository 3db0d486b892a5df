// The conformance checker against a broker whose connect, subscribe and publish hooks all call a pass-through
// backend process: with hooks that allow everything, the broker must still behave exactly as the model says.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { formatReport, runCheck } from '../../src/check/checker.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';

let backend: BackendProcess;
let broker: TestBroker;

beforeAll(async () => {
  backend = await startBackend();
  broker = await startTestBroker({ historySize: 3, hookUrl: backend.url, hooks: 'connect,subscribe,publish' });
});
afterAll(async () => {
  await broker?.close();
  await backend?.stop();
});

it('conforms to the model with pass-through hooks on (WebSocket and TCP clients)', { timeout: 60_000 }, async () => {
  const options = { url: broker.url, runs: 20, exclusive: true, historySize: 3, tcp: true };
  const report = await runCheck(options);
  expect(report.ok, formatReport(report, options)).toBe(true);
  expect((await backend.calls()).filter((c) => c.kind === 'publish').length).toBeGreaterThan(0);
});

// The Eclipse Paho MQTT 3.1.1 interoperability suite (client_test.py, vendored under test/vendor/paho.mqtt.testing)
// against a broker with --mqtt-port, run by python3 (stdlib only). `test/nosubscribe` is refused by a grant: the
// anonymous ACL (--mqtt-anonymous-acl) denies subscribing within it, as the suite's subscribe-failure test expects.
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

const RUNNER = fileURLToPath(new URL('./paho_run.py', import.meta.url));
const havePython = spawnSync('python3', ['--version']).status === 0;

let broker: TestBroker;
beforeAll(async () => {
  if (havePython) broker = await startTestBroker({ mqttPort: 0, mqttAnonymousAcl: '{"subDeny":["test/nosubscribe"]}' });
});
afterAll(() => broker?.close());

describe('Paho MQTT 3.1.1 interoperability (client_test.py)', () => {
  it.runIf(havePython)('every test of the suite passes', { timeout: 120_000 }, async () => {
    const child = spawn('python3', [RUNNER, '3', '127.0.0.1', String(broker.mqttPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const summary = /PAHO-RESULT ran=(\d+) failures=(\d+) errors=(\d+)/.exec(out);
    expect(summary, out.slice(-3000)).not.toBeNull();
    expect({ ran: Number(summary![1]), failures: Number(summary![2]), errors: Number(summary![3]), code }, out.slice(-3000)).toEqual({ ran: 10, failures: 0, errors: 0, code: 0 });
  });
  it.skipIf(havePython)('skipped: python3 is missing (the Paho suite is Python; CI installs it)', () => undefined);
});

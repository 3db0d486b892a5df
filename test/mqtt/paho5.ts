// npm run test:paho5: the Eclipse Paho MQTT 5.0 interoperability suite (client_test5.py, vendored) against a broker
// with --mqtt-port, reporting which of its tests pass. Not part of `npm test`: the broker does not implement all of
// MQTT 5.0 yet (docs/mqtt.md says what), so this prints the list and exits 0 unless the run itself fails.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startTestBroker } from '../helpers/broker.js';

const RUNNER = fileURLToPath(new URL('./paho_run.py', import.meta.url));
const broker = await startTestBroker({ mqttPort: 0, mqttAnonymousAcl: '{"subDeny":["test/nosubscribe"]}' });
const child = spawn('python3', [RUNNER, '5', '127.0.0.1', String(broker.mqttPort), ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'pipe'] });
let out = '';
child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
await new Promise((resolve) => child.on('close', resolve));
await broker.close();
const results = [...out.matchAll(/^(test_\w+) \(client_test5\.Test\.\w+\) \.\.\. .*?(ok|FAIL|ERROR)$/gms)].map((m) => ({ test: m[1]!, result: m[2]! }));
for (const r of results) console.log(`${r.result === 'ok' ? 'pass' : 'FAIL'}  ${r.test}`);
const summary = /PAHO-RESULT ran=(\d+) failures=(\d+) errors=(\d+)/.exec(out);
if (!summary) {
  console.error(out.slice(-4000));
  process.exit(1);
}
const passed = results.filter((r) => r.result === 'ok').length;
console.log(`paho mqtt 5.0: ${passed} of ${summary[1]} passed`);
if (process.env.PAHO_VERBOSE) console.log(out);

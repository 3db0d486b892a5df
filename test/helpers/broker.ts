// Test broker: a real broker on free ports with silent logs.
import { defaults, type Config } from '../../src/config.js';
import { startBroker, type Broker } from '../../src/broker.js';
import { createLogger } from '../../src/log.js';

export interface TestBroker extends Broker {
  url: string;
  httpUrl: string;
}

export async function startTestBroker(overrides: Partial<Config> = {}): Promise<TestBroker> {
  const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'silent', ...overrides };
  // TCP always listens too, on a free port (broker.tcpPort); the setting's own 0 would disable it.
  // MQTT listens only when asked for (`mqttPort: 0` picks a free port, read back as broker.mqttPort).
  const broker = await startBroker(config, { log: createLogger(config.logLevel, false), tcpPort: overrides.tcpPort ?? 0, mqttPort: overrides.mqttPort });
  return Object.assign(broker, { url: `ws://127.0.0.1:${broker.port}/ws`, httpUrl: `http://127.0.0.1:${broker.port}` });
}

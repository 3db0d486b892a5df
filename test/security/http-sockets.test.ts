// The HTTP port under hostile sockets: odd request targets are refused and never logged with their query.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { defaults, type Config } from '../../src/config.js';
import { startBroker, type Broker } from '../../src/broker.js';
import { rawHttp } from './upgrade.js';

let broker: Broker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

/** A broker whose log lines are kept in `lines` (debug level, JSON). */
async function loggedBroker(overrides: Partial<Config> = {}): Promise<{ broker: Broker; lines: string[] }> {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  const b = await startBroker({ ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, ...overrides }, { log });
  return { broker: b, lines };
}

describe('request targets', () => {
  it('no request target is logged with its query string; // is a 400 on both paths', async () => {
    const logged = await loggedBroker();
    broker = logged.broker;
    broker.router.on('GET', '/boom', () => {
      throw new Error('planted handler failure');
    });
    const port = broker.port;
    expect((await rawHttp(port, 'GET /boom?token=sekrit1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).status).toBe(500);
    expect((await rawHttp(port, 'GET //?token=sekrit2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).status).toBe(400);
    const upgrade = (t: string) => `GET ${t} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`;
    expect((await rawHttp(port, upgrade('//?token=sekrit3'))).status).toBe(400);
    expect((await rawHttp(port, upgrade('/nowhere?token=sekrit4'))).status).toBe(404);
    const text = logged.lines.join('');
    expect(text).toContain('"path":"/boom"');
    expect(text).not.toMatch(/sekrit/);
  });
});

// Hook URLs: one base URL for every kind (--hook-url), a kind's own URL replacing <base>/<kind>
// (--hook-rpc-url, …), and a kind with neither staying off. Real HTTP backends in their own processes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';
import { ConfigError, parseConfig, validateConfig } from '../../src/config.js';
import { Hooks } from '../../src/hooks/hooks.js';
import { pino } from 'pino';

let main: BackendProcess;
let special: BackendProcess;

beforeAll(async () => {
  [main, special] = await Promise.all([startBackend(), startBackend()]);
});
afterAll(async () => {
  await main?.stop();
  await special?.stop();
});

describe('hook URLs', () => {
  it('a kind with its own URL goes there; the others go to <--hook-url>/<kind>', async () => {
    await main.script({ subscribe: { answer: { data: 'from main' } }, rpc: { answer: { data: 'main rpc' } } });
    await special.script({ rpc: { answer: { data: 'special rpc' } } });
    const broker = await startTestBroker({ hookUrl: main.url, hookRpcUrl: `${special.url}/rpc`, hooks: 'subscribe,rpc', logLevel: 'silent' });
    const c = await TestClient.connect(broker.url);
    expect(await c.request({ op: 'sub', topic: 'a' })).toMatchObject({ op: 'ack', data: 'from main' });
    expect(await c.request({ op: 'rpc', method: 'm' })).toMatchObject({ op: 'ack', data: 'special rpc' });
    expect((await main.calls()).map((k) => k.kind)).toEqual(['subscribe']);
    expect((await special.calls()).map((k) => k.kind)).toEqual(['rpc']);
    c.ws.close();
    await broker.close();
  });

  it('without --hook-url only the kinds with their own URL are on', async () => {
    await special.script({ rpc: { answer: { data: 42 } }, subscribe: { answer: { allow: false, reason: 'never asked' } } });
    const broker = await startTestBroker({ hookRpcUrl: `${special.url}/rpc`, logLevel: 'silent' });
    const c = await TestClient.connect(broker.url);
    // subscribe has no URL: it is not a hook here, the sub goes straight through.
    expect(await c.request({ op: 'sub', topic: 'a' })).toMatchObject({ op: 'ack' });
    expect(await c.request({ op: 'rpc', method: 'm' })).toMatchObject({ op: 'ack', data: 42 });
    expect((await special.calls()).map((k) => k.kind)).toEqual(['rpc']);
    c.ws.close();
    await broker.close();
  });

  it('refuses a per-kind URL that is not http(s)', () => {
    const check = () => validateConfig(parseConfig(['--hook-rpc-url', 'ftp://x/rpc'], {}));
    expect(check).toThrow(ConfigError);
    expect(check).toThrow(/--hook-rpc-url/);
  });

  it('warns at start when the subscribe hook is on without the connect hook: subscriptions asked at connect are not asked of it', () => {
    const warnings = (hooks: string) => {
      const lines: { level: number; msg: string }[] = [];
      const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
      const config = parseConfig(['--hook-url', 'http://127.0.0.1:9/hooks', '--hooks', hooks], {});
      validateConfig(config);
      const h = new Hooks(config, log);
      h.client.close();
      return lines.filter((l) => l.level === 40).map((l) => l.msg);
    };
    expect(warnings('subscribe,publish')).toEqual([expect.stringContaining('add connect to --hooks')]);
    expect(warnings('connect,subscribe')).toEqual([]);
  });
});

// The client's connection as a user meets it, over real sockets: bad options are `bad_option` errors thrown by the
// constructor (never an uncaught error later inside a timer), a URL without a path means /ws, diagnose() asks the
// URL the client dials, and the events tell the close as it was: code, reason and HTTP status.
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchboardClient, SwitchboardError, type ClientOptions, type LastClose } from '@switchboard/client';
import { SignJWT } from 'jose';
import { startTestBroker } from '../helpers/broker.js';
import { until } from './proxy.js';
import { ScriptedBroker } from './scripted-broker.js';

const FAST = { minMs: 5, maxMs: 20 };
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function client(options: ClientOptions): SwitchboardClient {
  const c = new SwitchboardClient({ backoff: FAST, ...options });
  cleanup.push(() => c.close());
  return c;
}

async function scripted(): Promise<ScriptedBroker> {
  const s = await ScriptedBroker.start();
  cleanup.push(() => s.close());
  return s;
}

/** Records the client's close-related events in order. */
function closes(c: SwitchboardClient) {
  const log: { event: string; close: LastClose | undefined }[] = [];
  c.on('disconnected', (close) => log.push({ event: 'disconnected', close }));
  c.on('reconnecting', ({ lastClose }) => log.push({ event: 'reconnecting', close: lastClose }));
  c.on('closed', (close) => log.push({ event: 'closed', close }));
  return log;
}

describe('bad options are errors, never crashes', () => {
  const bad = (options: unknown) => {
    let thrown: unknown;
    try {
      new SwitchboardClient(options as ClientOptions);
    } catch (err) {
      thrown = err;
    }
    expect(thrown, JSON.stringify(options)).toBeInstanceOf(SwitchboardError);
    expect((thrown as SwitchboardError).code).toBe('bad_option');
    return (thrown as SwitchboardError).message;
  };

  it("README's relative URL in Node: a bad_option thrown by the constructor that says what to give instead", () => {
    expect(bad({ url: '/ws' })).toMatch(/not an absolute URL.*ws:\/\/127\.0\.0\.1:8080\/ws/);
  });

  it('bad URLs and bad values anywhere: each refused synchronously with what was wrong', () => {
    expect(bad({ url: 'ws://' })).toMatch(/not a URL|absolute/);
    expect(bad({ url: 'ftp://host/ws' })).toMatch(/scheme/);
    expect(bad({ url: [] })).toMatch(/url/);
    expect(bad({ url: ['ws://a:1/ws', 7] })).toMatch(/non-empty string/);
    expect(bad(undefined)).toMatch(/options object/);
    expect(bad({ url: 'ws://h/ws', requestTimeoutMs: -1 })).toMatch(/requestTimeoutMs/);
    expect(bad({ url: 'ws://h/ws', connectTimeoutMs: Number.NaN })).toMatch(/connectTimeoutMs/);
    expect(bad({ url: 'ws://h/ws', offlineQueueSize: 1.5 })).toMatch(/offlineQueueSize/);
    expect(bad({ url: 'ws://h/ws', backoff: { minMs: 100, maxMs: 10 } })).toMatch(/maxMs/);
    expect(bad({ url: 'ws://h/ws', backoff: { factor: 0.5 } })).toMatch(/factor/);
    expect(bad({ url: 'ws://h/ws', getToken: 'abc' })).toMatch(/getToken must be a function/);
    expect(bad({ url: 'ws://h/ws', token: 42 })).toMatch(/token must be a string/);
    expect(bad({ url: 'ws://h/ws', tokn: 'x' })).toMatch(/unknown option 'tokn'/);
  });

  it('http(s) URLs become ws(s); a URL without a path means /ws', () => {
    const c = new SwitchboardClient({ url: ['http://h:1', 'https://h:2/', 'ws://h:3?x=1', 'ws://h:4/custom'], connect: false });
    expect(c.urls).toEqual(['ws://h:1/ws', 'wss://h:2/ws', 'ws://h:3/ws?x=1', 'ws://h:4/custom']);
    c.close();
  });
});

describe('URLs against a real broker', () => {
  it('ws://host:port (no path) connects to /ws', async () => {
    const b = await startTestBroker();
    cleanup.push(() => b.close());
    const c = client({ url: `ws://127.0.0.1:${b.port}` });
    const hello = await c.connect();
    expect(hello.server.protocol).toBe(2);
  });

  it('diagnose() asks the URL the client dials: a wrong path is the 404 the connect got, not the 200 of /ws', async () => {
    const b = await startTestBroker();
    cleanup.push(() => b.close());
    const c = client({ url: `ws://127.0.0.1:${b.port}/nope`, connect: false });
    const log = closes(c);
    await expect(c.connect()).rejects.toMatchObject({ code: 'closed' });
    expect(log.at(-1)).toMatchObject({ event: 'closed', close: { status: 404 } });
    expect(await c.diagnose()).toMatchObject({ status: 404 });
    const good = client({ url: `ws://127.0.0.1:${b.port}/ws`, connect: false });
    expect(await good.diagnose()).toEqual({ status: 200 });
  });
});

describe('events tell the close as it was', () => {
  for (const [code, reason] of [
    [1000, 'bye for now'],
    [1001, 'server shutting down'],
    [4001, 'slow consumer'],
  ] as const) {
    it(`a close ${code} from the broker: disconnected and reconnecting carry ${code} "${reason}"`, async () => {
      const s = await scripted();
      const c = client({ url: s.url });
      const log = closes(c);
      await c.connect();
      s.last.ws.close(code, reason);
      await until(() => s.connections.length === 2 && c.state === 'connected', 'the reconnect');
      expect(log).toEqual([
        { event: 'disconnected', close: { code, reason } },
        { event: 'reconnecting', close: { code, reason } },
      ]);
    });
  }

  it('a close 1008 stops the client: disconnected and closed carry 1008 and the reason; no reconnect', async () => {
    const s = await scripted();
    const c = client({ url: s.url });
    const log = closes(c);
    await c.connect();
    s.last.ws.close(1008, 'rate limit exceeded');
    await until(() => c.state === 'closed', 'closed');
    expect(log).toEqual([
      { event: 'disconnected', close: { code: 1008, reason: 'rate limit exceeded' } },
      { event: 'closed', close: { code: 1008, reason: 'rate limit exceeded' } },
    ]);
    expect(s.connections).toHaveLength(1);
  });

  it('a connection lost without a close frame: 1006', async () => {
    const s = await scripted();
    const c = client({ url: s.url });
    const log = closes(c);
    await c.connect();
    s.last.ws.terminate();
    await until(() => log.length >= 2, 'the drop');
    expect(log.slice(0, 2)).toEqual([
      { event: 'disconnected', close: { code: 1006, reason: '' } },
      { event: 'reconnecting', close: { code: 1006, reason: '' } },
    ]);
  });

  it('a 401 upgrade: closed carries status 401 (no getToken: retrying cannot help)', async () => {
    const s = await scripted();
    s.refuse = { status: 401 };
    const c = client({ url: s.url, connect: false });
    const log = closes(c);
    await expect(c.connect()).rejects.toMatchObject({ code: 'closed', message: expect.stringContaining('HTTP 401') });
    expect(log).toEqual([{ event: 'closed', close: { code: 1006, reason: 'Unexpected server response: 401', status: 401 } }]);
  });

  it('a 401 on a reconnect (the token was revoked): disconnected has the drop, closed the 401', async () => {
    const s = await scripted();
    const c = client({ url: s.url });
    const log = closes(c);
    await c.connect();
    s.refuse = { status: 401 };
    s.last.ws.close(1001, 'server shutting down');
    await until(() => c.state === 'closed', 'closed');
    expect(log).toEqual([
      { event: 'disconnected', close: { code: 1001, reason: 'server shutting down' } },
      { event: 'reconnecting', close: { code: 1001, reason: 'server shutting down' } },
      { event: 'closed', close: { code: 1006, reason: 'Unexpected server response: 401', status: 401 } },
    ]);
  });

  it('close(): the socket closes with 1000 and both events say the client closed it', async () => {
    const s = await scripted();
    const c = client({ url: s.url });
    const log = closes(c);
    await c.connect();
    c.close();
    expect(await s.last.closed).toEqual({ code: 1000, reason: '' });
    expect(s.last.frames.at(-1)).toEqual({ op: 'quit' });
    expect(log).toEqual([
      { event: 'disconnected', close: { code: 1000, reason: 'closed by the client' } },
      { event: 'closed', close: { code: 1000, reason: 'closed by the client' } },
    ]);
  });

  it('a real broker: SIGTERM-like shutdown is 1001 "server shutting down"; auth without a token is a 401', async () => {
    const b = await startTestBroker();
    const c = client({ url: b.url });
    const log = closes(c);
    await c.connect();
    await b.close();
    await until(() => log.length >= 2, 'the drop');
    expect(log.slice(0, 2)).toEqual([
      { event: 'disconnected', close: { code: 1001, reason: 'server shutting down' } },
      { event: 'reconnecting', close: { code: 1001, reason: 'server shutting down' } },
    ]);

    const secret = 'a-secret-long-enough-for-hs256-tokens';
    const authed = await startTestBroker({ authSecret: secret });
    cleanup.push(() => authed.close());
    const refused = client({ url: authed.url, connect: false });
    const refusals = closes(refused);
    await expect(refused.connect()).rejects.toMatchObject({ code: 'closed' });
    expect(refusals).toEqual([{ event: 'closed', close: { code: 1006, reason: 'Unexpected server response: 401', status: 401 } }]);
    expect(await refused.diagnose()).toMatchObject({ status: 401 });
    const token = await new SignJWT({ sub: 'ann' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1m').sign(new TextEncoder().encode(secret));
    const ok = client({ url: authed.url, token });
    expect((await ok.connect()).client.name).toBe('ann');
  });
});

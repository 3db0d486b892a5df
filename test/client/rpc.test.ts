// The client library's rpc() against a real broker and a real application backend (its own process), and the close
// code 4004 (the application disconnected the client through the server API): the client stops, it does not come back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwitchboardClient, SwitchboardError } from '@switchboard/client';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';
import { blocksToRun } from '../../scripts/doc-blocks.js';
import { localize } from '../docs/shell.js';
import { until } from './proxy.js';

const FAST = { minMs: 5, maxMs: 50, factor: 2 };
let backend: BackendProcess;
let broker: TestBroker;

beforeAll(async () => {
  backend = await startBackend();
  broker = await startTestBroker({ hookUrl: backend.url, hooks: 'rpc', hookTimeoutMs: 300, logLevel: 'silent' });
});
afterAll(async () => {
  await broker?.close();
  await backend?.stop();
});

/** What a rejected promise was rejected with. */
const rejection = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as SwitchboardError);

describe('client.rpc', () => {
  it('resolves with the answer data; rejects with the broker code and message of a refusal, an error, a slow backend', async () => {
    await backend.script({ rpc: { by: { add: { data: { sum: 3 } }, deny: { allow: false, reason: 'not you' }, fail: { error: { message: 'no such pump' } } } } });
    const c = new SwitchboardClient({ url: broker.url, backoff: FAST });
    await c.connect();
    expect(await c.rpc('add', { a: 1, b: 2 })).toEqual({ sum: 3 });
    expect((await backend.calls()).at(-1)!.body).toMatchObject({ method: 'add', data: { a: 1, b: 2 } });
    expect(await rejection(c.rpc('deny'))).toMatchObject({ code: 'forbidden', message: expect.stringContaining('not you') });
    expect(await rejection(c.rpc('fail'))).toMatchObject({ code: 'backend_error', message: expect.stringContaining('no such pump') });
    // The backend takes longer than the hook timeout: asked, no answer: the outcome is unknown.
    await backend.script({ rpc: { delayMs: 1000, answer: { data: 1 } } });
    expect(await rejection(c.rpc('slow'))).toMatchObject({ code: 'outcome_unknown' });
    // A timeoutMs of its own, shorter than the broker's answer: the client's timeout.
    expect(await rejection(c.rpc('slow', null, { timeoutMs: 50 }))).toMatchObject({ code: 'timeout', message: expect.stringMatching(/50 ms/) });
    expect(await rejection(c.rpc('x', null, { timeoutMs: -1 }))).toMatchObject({ code: 'bad_option' });
    c.close();
    expect(await rejection(c.rpc('add'))).toMatchObject({ code: 'closed' });
  });

  it('the docs/client.md example prints what its comments say', async () => {
    await backend.script({ rpc: { by: { setLevel: { data: { pump: 2, level: 80 } }, reboot: { allow: false, reason: 'operators only' } } } });
    const [block] = blocksToRun('client-rpc');
    const code = localize(block!.text, { port: broker.port }).replace(/^import .*$/m, '');
    const printed: string[] = [];
    const log = (...parts: unknown[]) => printed.push(parts.join(' '));
    const run = new Function('SwitchboardClient', 'console', `return (async () => {${code}})();`) as (c: typeof SwitchboardClient, l: { log: typeof log }) => Promise<void>;
    await run(SwitchboardClient, { log });
    const promised = [...block!.text.matchAll(/console\.log\(.*\/\/ (.+)$/gm)].map((m) => m[1]);
    expect(promised).toHaveLength(2);
    expect(printed).toEqual(promised);
  });
});

describe('close code 4004', () => {
  it('the application disconnects the client through the server API: it stops for good with the reason; another code reconnects', async () => {
    const c = new SwitchboardClient({ url: broker.url, name: 'kicked', backoff: FAST });
    await c.connect();
    const closed = new Promise<{ code: number; reason: string }>((r) => c.once('closed', r));
    const res = await fetch(`${broker.httpUrl}/api/clients/disconnect`, { method: 'POST', body: JSON.stringify({ client: 'kicked', reason: 'account closed' }) });
    expect(res.status).toBe(200);
    expect(await closed).toMatchObject({ code: 4004, reason: 'account closed' });
    expect(c.state).toBe('closed');

    const d = new SwitchboardClient({ url: broker.url, name: 'moved', backoff: FAST });
    await d.connect();
    const states: string[] = [];
    d.on('state', (s) => states.push(s));
    await fetch(`${broker.httpUrl}/api/clients/disconnect`, { method: 'POST', body: JSON.stringify({ client: 'moved', code: 4100, reason: 'move along' }) });
    await until(() => states.includes('reconnecting') && d.state === 'connected', 'reconnected after 4100');
    d.close();
  });
});

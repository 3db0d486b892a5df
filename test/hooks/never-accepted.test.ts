// A hook call whose connection the backend never accepted: the request never left, so an rpc is answered
// `unavailable` (nothing was done, a retry is safe), not `outcome_unknown`. The backend is a process that listens
// and never accepts (its event loop blocked): while its accept queue has room the kernel completes the handshake and
// takes the request (it would be read if the backend woke: outcome_unknown); once the queue is full the connection is
// never established (the SYN is dropped) and the hook timeout fires before anything was sent. Over https the
// request leaves only once the TLS handshake is done.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { until } from '../helpers/waits.js';

/** Listens on 127.0.0.1 with an accept queue of one, then blocks its event loop for good: it never accepts. */
const NEVER_ACCEPTS = `
const server = require('node:net').createServer();
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  process.stdout.write(server.address().port + '\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
});`;

/**
 * How many connections wait in the accept queue of the socket listening on 127.0.0.1:`port`, as the kernel counts
 * them (/proc/net/tcp gives a listening socket's accept queue as its rx_queue).
 */
function acceptQueue(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const row = readFileSync('/proc/net/tcp', 'utf8').split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[1] === local && f[3] === '0A');
  if (!row) throw new Error(`nothing listens on 127.0.0.1:${port}`);
  return parseInt(row[4]!.split(':')[1]!, 16);
}

let backend: ChildProcess;
let port: number;
let broker: TestBroker;
const fillers: Socket[] = [];

beforeAll(async () => {
  backend = spawn(process.execPath, ['-e', NEVER_ACCEPTS], { stdio: ['ignore', 'pipe', 'inherit'] });
  port = Number(await new Promise<string>((resolve) => createInterface({ input: backend.stdout! }).once('line', resolve)));
  broker = await startTestBroker({ hookUrl: `http://127.0.0.1:${port}`, hooks: 'rpc', hookTimeoutMs: 300, hookBreakerFailures: 100, logLevel: 'silent' });
});
afterAll(async () => {
  for (const s of fillers) s.destroy();
  await broker?.close();
  backend?.kill('SIGKILL');
});

describe('a backend that never accepts the connection', () => {
  it('connected (the kernel took the request): outcome_unknown; never connected (accept queue full): unavailable', async () => {
    const c = await TestClient.connect(broker.url);
    // Room in the accept queue: the handshake completes and the request is written; the backend may still read it.
    expect(await c.request({ op: 'rpc', method: 'queued' })).toMatchObject({ code: 'outcome_unknown' });
    // Fill the accept queue (a backlog of one holds two): a connection made now is never established.
    for (let i = 0; i < 3; i++) fillers.push(connect(port, '127.0.0.1').on('error', () => undefined));
    await until(() => acceptQueue(port) > 1, 'the accept queue full (two connections waiting)');
    const answer = await c.request({ op: 'rpc', method: 'never-sent' });
    expect(answer).toMatchObject({ code: 'unavailable', message: expect.stringMatching(/nothing was done/) });
    c.ws.close();
  });

  it('over https, a TLS handshake the backend never answers: the request never left (unavailable)', async () => {
    // Accepts the TCP connection and never says a word: the TLS handshake, and so the request, never goes through.
    const mute = createServer(() => undefined);
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    const tls = await startTestBroker({ hookUrl: `https://127.0.0.1:${(mute.address() as { port: number }).port}`, hooks: 'rpc', hookTimeoutMs: 300, logLevel: 'silent' });
    try {
      const c = await TestClient.connect(tls.url);
      expect(await c.request({ op: 'rpc', method: 'never-sent' })).toMatchObject({ code: 'unavailable', message: expect.stringMatching(/did not accept the connection/) });
      c.ws.close();
    } finally {
      await tls.close();
      mute.close();
    }
  });
});

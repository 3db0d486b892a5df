// One Redis over TLS (`--redis rediss://host:port`), its certificate signed by a CA of the deployment's own, which
// the broker trusts through Node's NODE_EXTRA_CA_CERTS: every connection of the node is a TLS one, and publishes are
// numbered on it. A broker that does not trust the certificate does not start, and says why. With client
// certificates required, the URL's PEM files let it in, and are read again when they are rotated.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeClientLines, publishWhenUp, requireRedis, rotateTls, TestRedis, testTls, until, type TestTls } from './redis.js';
import { spawnBroker, type ChildBroker } from '../helpers/child-broker.js';
import { cliArgs } from '../helpers/cli.js';

const haveOpenssl = spawnSync('openssl', ['version']).status === 0;
if (!haveOpenssl) {
  const reason = 'test/cluster/tls.test.ts: skipped, openssl is missing (apt-get install -y openssl)';
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must run it`);
  console.warn(reason);
}
const run = requireRedis('cluster: Redis over TLS') && haveOpenssl;

/**
 * A publish through the broker on `port` is numbered (seq 1 of `topic`), and every connection of its node (commands,
 * subscribers, the heartbeat thread's, at its first tick) came to Redis's TLS port; the test looks on over the plain one.
 */
async function expectPublishedOverTls(redis: TestRedis, port: number, topic: string): Promise<void> {
  const res = await publishWhenUp(port, { topic, data: 'sealed' });
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ seq: 1 });
  await until(async () => (await nodeClientLines(redis.port)).some((l) => / name=sb-\S*-hb /.test(l)), 'the heartbeat thread connected');
  const clients = await nodeClientLines(redis.port);
  expect(clients).toHaveLength(4);
  for (const line of clients) expect(line).toContain(` laddr=127.0.0.1:${redis.tlsPort} `);
}

describe.skipIf(!run)('cluster: one Redis over TLS (rediss://)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-tls-'));
  let tls: TestTls;
  let redis: TestRedis;
  let broker: ChildBroker | undefined;

  beforeAll(async () => {
    tls = await testTls(dir);
    redis = await TestRedis.start({ tls });
  }, 30_000);
  afterAll(async () => {
    broker?.child.kill('SIGKILL');
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a broker that trusts the CA (NODE_EXTRA_CA_CERTS) reaches Redis over TLS only, and its publishes are numbered there', async () => {
    broker = await spawnBroker(['--redis', redis.tlsUrl], 'switchboard listening', { ...process.env, NODE_EXTRA_CA_CERTS: tls.ca });
    await expectPublishedOverTls(redis, broker.port, 'tls/t');
  });

  it('a broker that does not trust the certificate does not start: exit 1, the certificate named as the reason', async () => {
    const env = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    const child = spawn(process.execPath, [...cliArgs(), 'serve', '--port', '0', '--tcp-port', '0', '--redis', redis.tlsUrl], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(out).toContain(`cannot reach Redis at ${redis.tlsUrl}`);
    // The log line of the refused connection says what was wrong with the certificate.
    expect(out).toMatch(/"err":"[^"]*certificate[^"]*","msg":"redis connection error"/);
  }, 30_000);
});

describe.skipIf(!run)('cluster: one Redis over TLS that asks for client certificates (rediss://…?tlsCa=&tlsCert=&tlsKey=)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-mtls-'));
  let tls: TestTls;
  let redis: TestRedis;
  let broker: ChildBroker | undefined;

  beforeAll(async () => {
    tls = await testTls(dir);
    redis = await TestRedis.start({ tls: { ...tls, authClients: true } });
  }, 30_000);
  afterAll(async () => {
    broker?.child.kill('SIGKILL');
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const withFiles = (files: Record<string, string>) => `${redis.tlsUrl}?${Object.entries(files).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')}`;

  it("a broker with the URL's CA and client certificate is let in: every connection on the TLS port, publishes numbered", async () => {
    const env = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    broker = await spawnBroker(['--redis', withFiles({ tlsCa: tls.ca, tlsCert: tls.clientCert, tlsKey: tls.clientKey })], 'switchboard listening', env);
    await expectPublishedOverTls(redis, broker.port, 'mtls/t');
  });

  it('rotated certificates are used from the next connection on: a new CA, server and client certificate written over the files, Redis restarted on them; the broker reconnects without a restart', async () => {
    // A new CA signs a new server and client certificate: the old CA no longer verifies the server, and the server
    // (trusting the new CA only) refuses the old client certificate. Written over the files the URL names.
    await rotateTls(tls, join(dir, 'next'));
    await redis.stop();
    await redis.restart();
    await expectPublishedOverTls(redis, broker!.port, 'mtls/rotated');
  }, 30_000);

  it('a certificate with a key that is not its own is refused at start: exit 2, the files named', async () => {
    const child = spawn(process.execPath, [...cliArgs(), 'serve', '--port', '0', '--tcp-port', '0', '--redis', withFiles({ tlsCa: tls.ca, tlsCert: tls.clientCert, tlsKey: tls.key })], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    expect(await new Promise<number | null>((resolve) => child.once('exit', resolve))).toBe(2);
    expect(err).toContain(`--redis: the tlsCert and tlsKey files (${tls.clientCert}, ${tls.key}) are not a PEM certificate and its key`);
    expect(err).toContain('key values mismatch');
  }, 30_000);

  it('without a client certificate the broker is refused: exit 1', async () => {
    const child = spawn(process.execPath, [...cliArgs(), 'serve', '--port', '0', '--tcp-port', '0', '--redis', withFiles({ tlsCa: tls.ca })], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    expect(await new Promise<number | null>((resolve) => child.once('exit', resolve))).toBe(1);
    expect(out).toContain('cannot reach Redis at rediss://127.0.0.1:');
  }, 30_000);
});

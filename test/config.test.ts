// Config: flags and SWITCHBOARD_* env vars become one validated Config; bad values fail with a clear message.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, defaults, helpText, parseConfig, redisTarget, validateConfig } from '../src/config.js';
import { cliArgs } from './helpers/cli.js';
import { freePort } from './helpers/ports.js';

describe('parseConfig', () => {
  it('uses defaults, then env, then flags', () => {
    expect(parseConfig([], {})).toMatchObject({ port: 8080, tcpPort: 8000, heartbeatMs: 25_000, idleMs: 60_000, mailboxSize: 65_536, slowConsumer: 'close' });
    const fromEnv = parseConfig([], { SWITCHBOARD_PORT: '9000', SWITCHBOARD_SLOW_CONSUMER: 'drop-oldest' });
    expect(fromEnv).toMatchObject({ port: 9000, slowConsumer: 'drop-oldest' });
    expect(parseConfig(['--port', '9100'], { SWITCHBOARD_PORT: '9000' }).port).toBe(9100);
  });

  it('refuses bad values with a message naming the flag or env var', () => {
    expect(() => parseConfig(['--port', 'eighty'], {})).toThrow(/--port must be a whole number/);
    expect(() => parseConfig(['--port', '70000'], {})).toThrow(/--port must be between 0 and 65535/);
    expect(() => parseConfig([], { SWITCHBOARD_IDLE_MS: '5' })).toThrow(/SWITCHBOARD_IDLE_MS must be between/);
    expect(() => parseConfig(['--slow-consumer', 'block'], {})).toThrow(/must be one of close, drop-oldest/);
    expect(() => parseConfig(['--nope'], {})).toThrow(ConfigError);
    expect(() => validateConfig({ ...defaults, room: 'a/#' })).toThrow(/--room must be a topic/);
  });

  it('--redis takes one Redis (redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://) or a Redis Cluster (redis+cluster://host:port,…, rediss+cluster://), from the flag or the env', () => {
    const valid = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      const c = parseConfig(argv, env);
      validateConfig(c);
      return c.redisUrl;
    };
    expect(valid(['--redis', 'redis://10.0.0.5:6379/2'])).toBe('redis://10.0.0.5:6379/2');
    expect(valid([], { SWITCHBOARD_REDIS: 'redis+cluster://10.0.0.5:7000,10.0.0.6:7000' })).toBe('redis+cluster://10.0.0.5:7000,10.0.0.6:7000');
    expect(redisTarget('redis://127.0.0.1:6379')).toEqual({ cluster: false, url: 'redis://127.0.0.1:6379' });
    expect(redisTarget('redis+cluster://app:p%40ss@10.0.0.5:7000, [::1]:7001,redis-2.internal:7002')).toEqual({
      cluster: true,
      nodes: [
        { host: '10.0.0.5', port: 7000 },
        { host: '::1', port: 7001 },
        { host: 'redis-2.internal', port: 7002 },
      ],
      username: 'app',
      password: 'p@ss',
    });
    const refused = (url: string) => () => validateConfig({ ...defaults, redisUrl: url });
    expect(refused('http://10.0.0.5:6379')).toThrow(/--redis: not a redis:\/\/ URL/);
    expect(refused('redis://10.0.0.5:7000,10.0.0.6:7000')).toThrow(/several nodes are a Redis Cluster: write redis\+cluster:\/\//);
    expect(refused('redis+cluster://10.0.0.5')).toThrow(/a Redis Cluster node is host:port, not '10.0.0.5'/);
    expect(refused('redis+cluster://10.0.0.5:70000')).toThrow(/not '10.0.0.5:70000'/);
    expect(refused('redis+cluster://')).toThrow(ConfigError);
    expect(refused('redis+cluster://10.0.0.5:7000/1')).toThrow(/nothing else \(no database; over TLS, \?tlsCa=&tlsCert=&tlsKey= at most\)/);
    // Over TLS: rediss+cluster://, with the PEM files in the query (Node's CAs without tlsCa), and nothing else there.
    expect(redisTarget('rediss+cluster://10.0.0.5:7000')).toEqual({ cluster: true, nodes: [{ host: '10.0.0.5', port: 7000 }], tls: {} });
    expect(redisTarget('rediss+cluster://app:pw@10.0.0.5:7000,10.0.0.6:7000?tlsCa=/ca.pem&tlsCert=/c.pem&tlsKey=/k.pem')).toEqual({
      cluster: true,
      nodes: [{ host: '10.0.0.5', port: 7000 }, { host: '10.0.0.6', port: 7000 }],
      username: 'app',
      password: 'pw',
      tls: { ca: '/ca.pem', cert: '/c.pem', key: '/k.pem' },
    });
    for (const bad of ['rediss+cluster://10.0.0.5:7000?family=6', 'redis+cluster://10.0.0.5:7000?tlsCa=/ca.pem&x=1', 'rediss+cluster://10.0.0.5:7000/?__proto__=x']) {
      expect(refused(bad), bad).toThrow(/a Redis Cluster URL lists host:port nodes and nothing else/);
    }
    expect(refused('redis+cluster://10.0.0.5:7000?tlsCa=/ca.pem')).toThrow(/tlsCa, tlsCert and tlsKey are for a Redis over TLS/);
    expect(refused('rediss+cluster://10.0.0.5:7000?tlsKey=/k.pem')).toThrow(/a client certificate needs both tlsCert and tlsKey/);
    expect(refused('rediss+cluster://10.0.0.5:7000?tlsCa=/nonexistent/ca.pem')).toThrow(/--redis: the tlsCa file \/nonexistent\/ca.pem cannot be read \(ENOENT\)/);
    // The message shows the URL without its password.
    expect(refused('redis+cluster://app:secret@10.0.0.5')).toThrow(/'redis\+cluster:\/\/app:\*\*\*@10.0.0.5'/);
    expect(refused('redis+cluster://app:secret@10.0.0.5')).not.toThrow(/secret/);
    // One Redis on this host's Unix socket: its absolute path, a database, credentials.
    expect(valid(['--redis', 'unix:///run/redis/redis.sock'])).toBe('unix:///run/redis/redis.sock');
    expect(redisTarget('unix:///run/redis/redis.sock')).toEqual({ cluster: false, socket: { path: '/run/redis/redis.sock' } });
    expect(redisTarget('unix://app:p%40ss@/tmp/r.sock?db=3')).toEqual({ cluster: false, socket: { path: '/tmp/r.sock', db: 3, username: 'app', password: 'p@ss' } });
    for (const bad of ['unix://', 'unix:///', 'unix://run/redis.sock', 'unix:///tmp/r.sock/', 'unix:///tmp/r.sock?timeout=5', 'unix:///tmp/r.sock?db=x']) {
      expect(refused(bad), bad).toThrow(/a Unix socket is unix:\/\/ and its absolute path/);
    }
    expect(refused('unix://app:secret@/tmp/r.sock?x')).not.toThrow(/secret/);
    // The master that Sentinel names: the Sentinels, the master's name, a database, the Redis servers' credentials.
    expect(redisTarget('redis+sentinel://10.0.0.5:26379,[::1]:26380/mymaster')).toEqual({ cluster: false, sentinel: { sentinels: [{ host: '10.0.0.5', port: 26379 }, { host: '::1', port: 26380 }], name: 'mymaster' } });
    expect(redisTarget('redis+sentinel://app:p%40ss@s1:26379/main-1?db=2')).toEqual({ cluster: false, sentinel: { sentinels: [{ host: 's1', port: 26379 }], name: 'main-1', db: 2, username: 'app', password: 'p@ss' } });
    for (const bad of ['redis+sentinel://s1:26379', 'redis+sentinel://s1:26379/', 'redis+sentinel:///m', 'redis+sentinel://s1:26379/m?timeout=1', 'redis+sentinel://s1:26379/m/x']) {
      expect(refused(bad), bad).toThrow(/a Sentinel URL is redis\+sentinel:\/\/host:port,host:port\/<master name>/);
    }
    expect(refused('redis+sentinel://s1/m')).toThrow(/a Sentinel is host:port, not 's1'/);
    // The Sentinels' own credentials, in the query; shown without the password.
    expect(redisTarget('redis+sentinel://s1:26379/m?sentinelPassword=s%40p&db=1&sentinelUsername=watch')).toEqual({ cluster: false, sentinel: { sentinels: [{ host: 's1', port: 26379 }], name: 'm', db: 1, sentinelUsername: 'watch', sentinelPassword: 's@p' } });
    for (const bad of ['redis+sentinel://s1:26379/m?db=1&db=2', 'redis+sentinel://s1:26379/m?sentinelPassword=', 'redis+sentinel://s1:26379/m?__proto__=x', 'redis+sentinel://s1:26379/m?db']) {
      expect(refused(bad), bad).toThrow(/then at most \?db=N&sentinelUsername=U&sentinelPassword=P/);
    }
    expect(refused('redis+sentinel://s1:26379/m?sentinelPassword=topsecret&x=1')).toThrow(/sentinelPassword=\*\*\*&x=1/);
    expect(refused('redis+sentinel://s1:26379/m?sentinelPassword=topsecret&x=1')).not.toThrow(/topsecret/);
    // rediss:// with PEM files of its own: taken out of the query, the rest of which stays ioredis's.
    expect(redisTarget('rediss://app:pw@r1:6380/2?tlsCa=%2Fetc%2Fca.pem&family=6&tlsCert=/c.pem&tlsKey=/k.pem')).toEqual({ cluster: false, url: 'rediss://app:pw@r1:6380/2?family=6', tls: { ca: '/etc/ca.pem', cert: '/c.pem', key: '/k.pem' } });
    expect(redisTarget('rediss://r1:6380?tlsCa=/ca.pem')).toEqual({ cluster: false, url: 'rediss://r1:6380', tls: { ca: '/ca.pem' } });
    expect(refused('redis://r1:6379?tlsCa=/ca.pem')).toThrow(/tlsCa, tlsCert and tlsKey are for a Redis over TLS \(rediss:\/\/, /);
    expect(refused('rediss://r1:6380?tlsCert=/c.pem')).toThrow(/a client certificate needs both tlsCert and tlsKey/);
    expect(refused('rediss://r1:6380?tlsCa=/a.pem&tlsCa=/b.pem')).toThrow(/tlsCa is the path of a PEM file, given once/);
    // Not what the engine's connections rest on (ioredis would let the URL override it): the offline queue, say.
    expect(refused('redis://r1:6379?enableOfflineQueue=true')).toThrow(/enableOfflineQueue is set by the broker/);
    expect(refused('redis://r1:6379/0?family=6&commandTimeout=99999')).toThrow(/commandTimeout is set by the broker/);
    expect(redisTarget('redis://r1:6379/0?family=6')).toEqual({ cluster: false, url: 'redis://r1:6379/0?family=6' });
    expect(refused('rediss://r1:6380?tlsCa=/nonexistent/ca.pem')).toThrow(/--redis: the tlsCa file \/nonexistent\/ca.pem cannot be read \(ENOENT\)/);
    // Files that can be read but are not PEM are refused at start too, not left to fail every connection.
    const dir = mkdtempSync(join(tmpdir(), 'sb-config-pem-'));
    try {
      const junk = join(dir, 'junk.pem');
      writeFileSync(junk, 'not a certificate\n');
      expect(refused(`rediss://r1:6380?tlsCa=${junk}`)).toThrow(`--redis: the tlsCa file ${junk} holds no PEM certificate`);
      expect(refused(`rediss+cluster://r1:7000?tlsCert=${junk}&tlsKey=${junk}`)).toThrow(/the tlsCert and tlsKey files \(.*\) are not a PEM certificate and its key \(.*no start line\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Through Sentinel over TLS: the Sentinels and the servers, with the PEM files beside the Sentinel keys.
    expect(redisTarget('rediss+sentinel://s1:26379/m')).toEqual({ cluster: false, sentinel: { sentinels: [{ host: 's1', port: 26379 }], name: 'm', tls: {} } });
    expect(redisTarget('rediss+sentinel://s1:26379/m?tlsCa=/ca.pem&sentinelPassword=p&tlsCert=/c.pem&tlsKey=/k.pem&db=1')).toEqual({
      cluster: false,
      sentinel: { sentinels: [{ host: 's1', port: 26379 }], name: 'm', sentinelPassword: 'p', db: 1, tls: { ca: '/ca.pem', cert: '/c.pem', key: '/k.pem' } },
    });
    expect(refused('redis+sentinel://s1:26379/m?tlsCa=/ca.pem')).toThrow(/tlsCa, tlsCert and tlsKey are for a Redis over TLS/);
    expect(refused('rediss+sentinel://s1:26379/m?tlsCa=/a.pem&tlsCa=/b.pem')).toThrow(/tlsCa is the path of a PEM file, given once/);
    expect(refused('rediss+sentinel://s1:26379/m?tls=1')).toThrow(/then at most \?db=N&sentinelUsername=U&sentinelPassword=P \(over TLS/);
    expect(refused('rediss+sentinel://s1:26379/m?tlsCert=/nonexistent/c.pem&tlsKey=/nonexistent/k.pem')).toThrow(/the tlsCert file \/nonexistent\/c.pem cannot be read/);
    expect(refused('redis+sentinel://app:secret@s1/m')).not.toThrow(/secret/);
  });

  it('documents every setting in --help', () => {
    const help = helpText();
    for (const flag of ['--port', '--tcp-port', '--heartbeat-ms', '--idle-ms', '--mailbox-size', '--slow-consumer', '--max-payload', '--log-level']) {
      expect(help).toContain(flag);
    }
    expect(help).toContain('redis+cluster://host:port,host:port');
    expect(help).toContain('SWITCHBOARD_HEARTBEAT_MS');
  });
});

describe('CLI', () => {
  /** The CLI run to its exit: its code and what it printed. */
  const cli = (...args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [...cliArgs(), ...args], { cwd: new URL('..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'pipe'] });
      const out = { stdout: '', stderr: '' };
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out.stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (out.stderr += c));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, ...out }));
    });

  it('prints serve --help and exits 0', async () => {
    const r = await cli('serve', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Usage: switchboard serve');
  });

  it('exits 2 with a message on a bad flag or an unknown command', async () => {
    // Side by side: each is a Node process starting up, most of its time spent loading modules.
    const [bad, redis, unknown, inherited] = await Promise.all([
      cli('serve', '--port', 'x'),
      cli('serve', '--redis', 'rediss+cluster://10.0.0.5:7000?tlsCa=/nonexistent/ca.pem'),
      cli('frobnicate'),
      // A name every object has is no command either (it was Object's constructor: a fatal TypeError).
      cli('constructor'),
    ]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--port must be a whole number');
    expect(redis.status).toBe(2);
    expect(redis.stderr).toContain('--redis: the tlsCa file /nonexistent/ca.pem cannot be read (ENOENT)');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    expect(inherited.status).toBe(2);
    expect(inherited.stderr).toContain("unknown command 'constructor'");
  });

  it('a Redis it cannot reach at start is fatal: exit 1, the URL shown without its password', async () => {
    // Nothing listens on a port just found free: the connection is refused at once.
    const port = await freePort();
    const r = await cli('serve', '--port', '0', '--tcp-port', '0', '--redis', `redis://app:s3cret@127.0.0.1:${port}`);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`cannot reach Redis at redis://app:***@127.0.0.1:${port}`);
    expect(r.stdout + r.stderr).not.toContain('s3cret');
  });
});

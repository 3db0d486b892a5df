// Config: flags and SWITCHBOARD_* env vars become one validated Config; bad values fail with a clear message.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ConfigError, defaults, helpText, parseConfig, validateConfig } from '../src/config.js';

describe('parseConfig', () => {
  it('uses defaults, then env, then flags', () => {
    expect(parseConfig([], {})).toMatchObject({ port: 8080, tcpPort: 8000, heartbeatMs: 25_000, idleMs: 60_000, mailboxSize: 10_000, slowConsumer: 'close' });
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

  it('documents every setting in --help', () => {
    const help = helpText();
    for (const flag of ['--port', '--tcp-port', '--heartbeat-ms', '--idle-ms', '--mailbox-size', '--slow-consumer', '--max-payload', '--log-level']) {
      expect(help).toContain(flag);
    }
    expect(help).toContain('SWITCHBOARD_HEARTBEAT_MS');
  });
});

describe('CLI', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: new URL('..', import.meta.url).pathname, encoding: 'utf8' });

  it('prints serve --help and exits 0', () => {
    const r = cli('serve', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Usage: switchboard serve');
  });

  it('exits 2 with a message on a bad flag or an unknown command', () => {
    const bad = cli('serve', '--port', 'x');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--port must be a whole number');
    const unknown = cli('frobnicate');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
  });
});

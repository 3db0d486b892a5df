// `switchboard chat` as people use it: in a pseudo-terminal (util-linux `script`) with colours, /name, /who and
// /quit; with NO_COLOR plain; from a pipe it says each line and exits once they are all acknowledged.
import { spawn, spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchboardClient, type Message } from '@switchboard/client';
import { freePort } from '../helpers/ports.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { until } from './proxy.js';
import { cliArgs } from '../helpers/cli.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const haveScript = spawnSync('script', ['--version']).status === 0;
if (!haveScript) console.warn('chat-cli: the terminal tests are skipped: util-linux `script` is missing');
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const CLI = `${process.execPath} ${cliArgs().join(' ')} chat`;

/** Runs `command` in a pseudo-terminal; the test types into it and reads the screen. */
function inTerminal(command: string, env: Record<string, string> = {}) {
  const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { cwd: ROOT, env: { ...process.env, TERM: 'xterm', ...env } });
  let screen = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (screen += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (screen += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  cleanup.push(() => child.kill());
  return { type: (text: string) => child.stdin.write(text), screen: () => screen, exited };
}

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');

async function room(broker: TestBroker) {
  const peer = new SwitchboardClient({ url: broker.url, name: 'peer' });
  cleanup.push(() => peer.close());
  const sub = await peer.subscribe<string>('chat', { presence: true });
  const said: Message<string>[] = [];
  sub.on('message', (m) => said.push(m));
  return { peer, sub, said };
}

describe('switchboard chat', () => {
  it.skipIf(!haveScript)('in a terminal: joins, shows who is here, coloured names, /name, /who, /quit', { timeout: 45_000 }, async () => {
    const broker = await startTestBroker();
    cleanup.push(() => broker.close());
    const { peer, said } = await room(broker);
    const t = inTerminal(`${CLI} --url ${broker.url} --name tess`);
    await until(() => plain(t.screen()).includes('joined #chat as tess'), 'the join line', 20_000);
    expect(plain(t.screen())).toMatch(/here: .*peer.*tess|here: .*tess/);
    await peer.publish('chat', 'hello tess');
    await until(() => plain(t.screen()).includes('peer: hello tess'), 'the message');
    expect(t.screen()).toMatch(/\x1b\[1;\d+mpeer\x1b\[0m: hello tess/); // a coloured name
    t.type('hi peer\r');
    await until(() => said.some((m) => m.data === 'hi peer' && m.from?.name === 'tess'), 'tess speaking');
    t.type('/name tina\r');
    await until(() => plain(t.screen()).includes('you are now tina'), 'the rename');
    t.type('/who\r');
    await until(() => /here: .*peer.*tina/.test(plain(t.screen())), 'the who line');
    t.type('/quit\r');
    expect(await t.exited).toBe(0);
  });

  it.skipIf(!haveScript)('NO_COLOR: no colour codes around names', { timeout: 45_000 }, async () => {
    const broker = await startTestBroker();
    cleanup.push(() => broker.close());
    const { peer } = await room(broker);
    const t = inTerminal(`${CLI} --url ${broker.url} --name nico`, { NO_COLOR: '1' });
    await until(() => t.screen().includes('joined #chat as nico'), 'the join line', 20_000);
    await peer.publish('chat', 'plain please');
    await until(() => t.screen().includes('peer: plain please'), 'the message');
    expect(t.screen()).not.toMatch(/\x1b\[1;\d+m/);
    t.type('/quit\r');
    expect(await t.exited).toBe(0);
  });

  it('from a pipe: says each line, in order, and exits 0 at EOF after they are acknowledged', { timeout: 45_000 }, async () => {
    const broker = await startTestBroker();
    cleanup.push(() => broker.close());
    const { said } = await room(broker);
    const child = spawn(process.execPath, [...cliArgs(), 'chat', '--url', broker.url, '--name', 'piper'], { cwd: ROOT });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i + 1}`);
    child.stdin.end(lines.join('\n') + '\n');
    expect(await exited, out).toBe(0);
    // Acknowledged before exit means published: the room has all of them, in order.
    await until(() => said.length === 50, 'all lines in the room');
    expect(said.map((m) => m.data)).toEqual(lines);
    expect(said.every((m) => m.from?.name === 'piper')).toBe(true);
    expect(out).not.toMatch(/\x1b\[/);
  });

  it('from a pipe, a --name the broker refuses (reserved, or taken): exit 1, and no line is said under another name', { timeout: 45_000 }, async () => {
    // The lines went out as guest-<n> and the exit was 0 (found by a review helper).
    const broker = await startTestBroker();
    cleanup.push(() => broker.close());
    const { said } = await room(broker);
    for (const name of ['c12', 'peer']) {
      const child = spawn(process.execPath, [...cliArgs(), 'chat', '--url', broker.url, '--name', name], { cwd: ROOT });
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      child.stdin.end(`hello as ${name}\n`);
      expect(await exited, err).toBe(1);
      expect(err).toContain(`--name '${name}' was refused by the broker`);
    }
    const peer = new SwitchboardClient({ url: broker.url });
    cleanup.push(() => peer.close());
    await peer.publish('chat', 'marker');
    await until(() => said.some((m) => m.data === 'marker'), 'the marker');
    expect(said.map((m) => m.data)).toEqual(['marker']);
  });

  it('from a pipe, a dead URL: one message on stderr, nothing on stdout, exit 1', { timeout: 45_000 }, async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [...cliArgs(), 'chat', '--url', `ws://127.0.0.1:${port}/ws`], { cwd: ROOT });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.stdin.end('hello?\nanyone?\n');
    expect(await exited).toBe(1);
    expect(out).toBe('');
    expect(err).toMatch(new RegExp(`^switchboard chat: ws://127\\.0\\.0\\.1:${port}/ws: cannot connect \\(1006 [^\\n]*\\)\\n$`));
  });

  it.skipIf(!haveScript)('in a terminal, a dead URL is one status line counting down; the room is joined once the broker is there', { timeout: 45_000 }, async () => {
    const port = await freePort();
    const t = inTerminal(`${CLI} --url ws://127.0.0.1:${port}/ws --name late`, { NO_COLOR: '1' });
    await until(() => (t.screen().match(/retrying in \d+s/g) ?? []).length >= 3, 'the countdown', 20_000);
    expect(t.screen()).toMatch(/\r\x1b\[2K\* offline \(1006 [^\n]*\) · retrying in \d+s/);
    expect(t.screen()).not.toContain('\n');
    const broker = await startTestBroker({ port });
    cleanup.push(() => broker.close());
    await until(() => t.screen().includes('joined #chat as late'), 'the join line', 20_000);
    t.type('/quit\r');
    expect(await t.exited).toBe(0);
  });

  it.skipIf(!haveScript)('in a terminal, through a broker restart: a status line while it is away, then the lost resume said on stderr', { timeout: 45_000 }, async () => {
    const first = await startTestBroker();
    const port = first.port;
    const t = inTerminal(`${CLI} --url ${first.url} --name stay`, { NO_COLOR: '1' });
    await until(() => t.screen().includes('joined #chat as stay'), 'the join line', 20_000);
    const peer = new SwitchboardClient({ url: first.url });
    await peer.publish('chat', 'before');
    await until(() => t.screen().includes(': before'), 'the first message');
    peer.close();
    await first.close();
    await until(() => /\* offline \(1001 server shutting down\) · retrying in/.test(t.screen()), 'the status line');
    const second = await startTestBroker({ port });
    cleanup.push(() => second.close());
    // The memory broker restarted: new epochs, so the room's resume cannot be vouched for, and the chat says so.
    await until(() => t.screen().includes('not recovered after reconnecting'), 'the verdict', 20_000);
    expect(t.screen()).toMatch(/switchboard chat: #chat: not recovered after reconnecting \(recovered:false, (epoch_changed|unknown_position)\): messages may be missing on chat/);
    await until(() => t.screen().includes('reconnected as stay'), 'back online');
    t.type('/quit\r');
    expect(await t.exited).toBe(0);
  });
});

// `switchboard chat` as people use it: in a pseudo-terminal (util-linux `script`) with colours, /name, /who and
// /quit; with NO_COLOR plain; from a pipe it says each line and exits once they are all acknowledged.
import { spawn, spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchboardClient, type Message } from '../../src/client/index.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { until } from './proxy.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const haveScript = spawnSync('script', ['--version']).status === 0;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const CLI = `${process.execPath} --import tsx src/cli.ts chat`;

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
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'chat', '--url', broker.url, '--name', 'piper'], { cwd: ROOT });
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
});

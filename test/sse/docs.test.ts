// docs/sse.md's curl session, run with the real curl against a real broker: the stream in one "terminal", the POST
// in another, then the reconnect with the last event id. Values that vary per run (life, stream ids, client ids,
// ports, timestamps) are bound as in the other docs tests (test/docs/transcript.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { blocksToRun } from '../../scripts/doc-blocks.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { Bindings, expectLines } from '../docs/transcript.js';
import { localize, sh } from '../docs/shell.js';

const haveCurl = (() => {
  try {
    execFileSync('curl', ['--version']);
    return true;
  } catch {
    return false;
  }
})();

const started: (ChildProcess | TestBroker)[] = [];
afterAll(async () => {
  for (const s of started) 'kill' in s ? s.kill() : await s.close();
});

/** A streaming command (curl -N): its output lines as they come. */
function stream(command: string): { lines: string[]; until: (n: number) => Promise<void>; stop: () => Promise<void> } {
  const child = spawn('sh', ['-c', `exec ${command}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  started.push(child);
  let text = '';
  const out = { lines: [] as string[], until, stop };
  child.stdout!.on('data', (c: Buffer) => {
    text += c.toString();
    out.lines = text.split('\n');
  });
  async function until(n: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (out.lines.length < n + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }
  async function stop(): Promise<void> {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill();
    await exited;
  }
  return out;
}

const trimEnd = (ls: string[]) => {
  const out = [...ls];
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out;
};

describe('docs/sse.md', () => {
  it.skipIf(!haveCurl)('the curl session: stream, POST, reconnect with Last-Event-ID (needs curl)', async () => {
    const [streamBlock, postBlock, resumeBlock] = blocksToRun('sse-curl');
    expect(resumeBlock, 'three blocks marked sse-curl').toBeDefined();
    const b = await startTestBroker();
    started.push(b);
    const bindings = new Bindings();
    const lines = (t: string) => t.replace(/\n$/, '').split('\n');
    // The documented life and stream ids stand for this run's: bound by hand (they are not JSON-quoted everywhere).
    const docLife = /^id: 1;([0-9a-z]+);/m.exec(streamBlock!.text)![1]!;
    const real = (text: string, streamIds: Map<string, string>) => {
      let t = text.replaceAll(docLife, b.hub.life);
      for (const [doc, id] of streamIds) t = t.replaceAll(doc, id);
      return t;
    };
    const ids = new Map<string, string>();
    const docStream = (block: string) => /"stream":"([A-Za-z0-9_-]{22})"/.exec(block)![1]!;

    const [command, ...expected] = lines(streamBlock!.text);
    const console = stream(localize(command!.slice(2), { port: b.port }));
    await console.until(6);
    ids.set(docStream(streamBlock!.text), /"stream":"([A-Za-z0-9_-]{22})"/.exec(console.lines.join('\n'))![1]!);

    const [post, ...posted] = lines(postBlock!.text);
    const r = await sh(real(localize(post!.slice(2), { port: b.port }), ids), process.env);
    expectLines(posted, lines(r.stdout), bindings, 'the POST');
    await console.until(expected.length);
    await console.stop();
    expectLines(expected.map((l) => real(l, ids)), trimEnd(console.lines), bindings, 'the stream');

    const [publish, published, resume, ...resumed] = lines(resumeBlock!.text);
    const p = await sh(localize(publish!.slice(2), { port: b.port }), process.env);
    expectLines([real(published!, ids)], lines(p.stdout), bindings, 'the publish');
    const back = stream(real(localize(resume!.slice(2), { port: b.port }), ids));
    await back.until(4);
    ids.set(docStream(resumeBlock!.text), /"stream":"([A-Za-z0-9_-]{22})"/.exec(back.lines.join('\n'))![1]!);
    await back.until(resumed.length);
    await back.stop();
    expectLines(resumed.map((l) => real(l, ids)), trimEnd(back.lines), bindings, 'the resumed stream');
  });
});

// What the docs' runners share: cleanup of what they start, a broker per runner, and running a transcript block.
import { afterEach, describe, expect, it } from 'vitest';
import { allCodeBlocks, blocksToRun, type CodeBlock } from '../../scripts/doc-blocks.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { Bindings, expectLines } from './transcript.js';
import { localize, sh, switchboardShim, type Addresses } from './shell.js';

export const cleanup: (() => unknown)[] = [];

/** Stops what the last runner started (brokers, sockets, processes), newest first. */
export async function cleanupAll(): Promise<void> {
  for (const f of cleanup.splice(0).reverse()) await f();
}

export async function broker(overrides: Parameters<typeof startTestBroker>[0] = {}): Promise<TestBroker> {
  const b = await startTestBroker(overrides);
  cleanup.push(() => b.close());
  return b;
}

export const linesOf = (block: CodeBlock) => block.text.replace(/\n$/, '').split('\n');

/** Runs each `$ command` of a transcript block and compares what it prints with the lines under it. */
export async function transcript(block: CodeBlock, a: Addresses, bindings = new Bindings(), env?: NodeJS.ProcessEnv): Promise<void> {
  const lines = linesOf(block);
  expect(lines[0], `${block.file}:${block.line}: a transcript starts with $`).toMatch(/^\$ /);
  let shimEnv = env;
  if (!shimEnv) {
    const shim = switchboardShim();
    cleanup.push(shim.remove);
    shimEnv = { ...process.env, PATH: `${shim.dir}:${process.env.PATH}` };
  }
  for (let i = 0; i < lines.length; ) {
    const command = lines[i]!.slice(2);
    const until = lines.findIndex((l, j) => j > i && l.startsWith('$ '));
    const expected = lines.slice(i + 1, until < 0 ? lines.length : until);
    const r = await sh(bindings.put(localize(command, a)), { ...shimEnv, SWITCHBOARD_URL: `http://127.0.0.1:${a.port}`, SWITCHBOARD_WS_URL: `ws://127.0.0.1:${a.port}/ws` });
    expectLines(expected, (r.stdout + r.stderr).replace(/\n$/, '').split('\n').filter((l, k, all) => l !== '' || k < all.length - 1), bindings, `${block.file}:${block.line}: $ ${command}`);
    i = until < 0 ? lines.length : until;
  }
}

/** What a runner may do besides running: skip, saying why (only where a tool is missing; CI has them all). */
export interface RunContext {
  skip(reason: string): void;
}


/** A runner: runs the blocks marked with its ID; `elsewhere`: the test file that runs them itself. */
export interface Runner {
  run?: (blocks: CodeBlock[], ctx: RunContext) => Promise<void>;
  elsewhere?: string;
  timeout?: number;
}

/** One test per runner of `runners` that runs its blocks here (three files share them out, for the two workers). */
export function runnerTests(title: string, runners: Record<string, Runner>): void {
  afterEach(cleanupAll);
  describe(title, () => {
    for (const [id, runner] of Object.entries(runners)) {
      if (!runner.run) continue;
      const blocks = id.startsWith('example:') ? allCodeBlocks().filter((b) => b.marker?.kind === 'generated' && b.marker.value === id) : blocksToRun(id);
      it(`${id}: ${blocks.map((b) => `${b.file}:${b.line}`).join(', ')}`, { timeout: runner.timeout ?? 30_000 }, async (ctx) => {
        expect(blocks.length, `blocks of ${id}`).toBeGreaterThan(0);
        await runner.run!(blocks, { skip: (reason) => ctx.skip(reason) });
      });
    }
  });
}

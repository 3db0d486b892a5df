import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import LongFilesFirst from './test/sequencer.js';

export default defineConfig({
  // The client package's sources, as tsconfig.json's `paths` give them to tsc and tsx: tests need no build.
  resolve: { alias: [{ find: /^@switchboard\/client$/, replacement: fileURLToPath(new URL('./packages/client/src/index.ts', import.meta.url)) }] },
  test: {
    include: ['test/**/*.test.ts'],
    // Bundles the CLI once for the tests that start it as a process (test/helpers/cli.ts).
    globalSetup: ['test/global-setup.ts'],
    exclude: ['test/bench/**', 'node_modules/**'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Five workers on this 2-core machine: the suite is mostly waiting (sockets, child processes, timers), not CPU.
    // Fresh clone, quiet machine (3 December): two workers 138 s, four 91 s, five 80-83 s (three runs, all green);
    // the files end within a second of each other, so more workers is what shortens it. Four once failed tests at
    // load 25-38 (ports from freePort() taken by someone's outgoing connection before a child bound them): test
    // ports now come from a band of the worker's own below the ephemeral range (test/helpers/ports.ts).
    // 6 December (another VM, slower: five workers 107-110 s): six 103 s, seven 97 and 104 s, eight 101.6 s (more
    // workers each import the module graph: the suite's CPU grows with them). Seven, all green.
    maxWorkers: 7,
    // One module graph per worker, not per file: importing the broker's modules again for each of ~120 files cost
    // about as much CPU as the tests themselves (measured: CPU of a full run 314 s → 172 s). Test files must leave
    // nothing behind (servers closed, mocks and env restored in finally / afterAll), which they do anyway.
    isolate: false,
    // The files known to be long start first (test/sequencer.ts), so none of them is left to run alone at the end.
    sequence: { sequencer: LongFilesFirst },
  },
});

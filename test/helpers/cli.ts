// How tests start the CLI as a process: one esbuild bundle of src/cli.ts (made once by test/global-setup.ts, or here
// on first use), so each process pays Node's start-up, not tsx's transform of ~100 modules. The bundle is the same
// source: dependencies stay external, the client package comes from its sources (as tsconfig's `paths` give it to
// tsx), and import.meta.url reads as a file two levels under the root, as in src/, so pages, the inspector's files
// and the dev-mode client bundle are found exactly as under tsx.
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildSync } from 'esbuild';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Where the bundle is written (`.cache/` is git-ignored). */
export const TEST_CLI = `${ROOT}.cache/test-cli/cli.mjs`;

/** Bundles src/cli.ts into TEST_CLI; built aside and renamed into place, so a concurrent reader never sees half a file. */
export function buildTestCli(): string {
  const deps = (file: string) => Object.keys((JSON.parse(readFileSync(ROOT + file, 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {});
  const external = [...deps('package.json'), ...deps('packages/client/package.json')].filter((d) => d !== '@switchboard/client');
  mkdirSync(dirname(TEST_CLI), { recursive: true });
  const fresh = `${TEST_CLI}.${process.pid}`;
  buildSync({
    entryPoints: [ROOT + 'src/cli.ts'],
    outfile: fresh,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: [...external, ...external.map((d) => `${d}/*`)],
    alias: { '@switchboard/client': ROOT + 'packages/client/src/index.ts' },
    define: { 'import.meta.url': JSON.stringify(pathToFileURL(ROOT + 'src/cli/bundled-cli.ts').href) },
    logLevel: 'warning',
  });
  renameSync(fresh, TEST_CLI);
  return TEST_CLI;
}

/** The bundle's path, built now if the global setup did not run (a single file run by another runner). */
export function testCli(): string {
  return existsSync(TEST_CLI) ? TEST_CLI : buildTestCli();
}

/** Node's arguments that run the CLI: `spawn(process.execPath, [...cliArgs(), 'serve', ...])`, with cwd at the root. */
export function cliArgs(): string[] {
  return [testCli()];
}

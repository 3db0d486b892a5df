// How tests start the CLI as a process: one esbuild bundle of src/cli.ts (made once by test/global-setup.ts, or here
// on first use), so each process pays Node's start-up, not tsx's transform of ~100 modules. The bundle is the same
// source, and its dependencies are bundled in too: loading ioredis, prom-client and the rest from node_modules file by
// file was most of a process's start (a cluster node 0.75 s of CPU → 0.40, a plain broker 0.30 → 0.20; the suite starts
// ~80 of them). Left outside: ws's optional native add-ons, pino-pretty (loaded by name) and esbuild (a binary, for
// the dev-mode client bundle). The client package comes from its sources (as tsconfig's `paths` give it to tsx), and
// import.meta.url reads as a file two levels under the root, as in src/, so pages, the inspector's files, the
// heartbeat thread's ioredis and the dev-mode client bundle are found exactly as under tsx. It is split as the CLI is
// (each command's module is imported when it runs): a `switchboard sub` loads the client, not the broker's Redis
// client, metrics and checker.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildSync } from 'esbuild';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIR = `${ROOT}.cache/test-cli/`;
/** What tests run (`.cache/` is git-ignored): one line importing the newest build's entry. */
export const TEST_CLI = `${DIR}cli.mjs`;

/**
 * Bundles src/cli.ts into a build directory of its own, then points TEST_CLI at it (written aside and renamed into
 * place): a process started meanwhile runs the previous build whole, never half of one. Builds older than an hour
 * are removed (a run in progress started its processes from the newest).
 */
export function buildTestCli(): string {
  mkdirSync(DIR, { recursive: true });
  for (const old of readdirSync(DIR)) {
    if (old.startsWith('build-') && Date.now() - statSync(DIR + old).mtimeMs > 3_600_000) rmSync(DIR + old, { recursive: true, force: true });
  }
  const build = `build-${process.pid}-${Date.now()}`;
  buildSync({
    entryPoints: { cli: ROOT + 'src/cli.ts' },
    outdir: DIR + build,
    splitting: true,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['bufferutil', 'utf-8-validate', 'pino-pretty', 'esbuild'],
    // Bundled CommonJS calls require() (node: built-ins, the externals): ESM output has none of its own.
    banner: { js: "import { createRequire as __sbCreateRequire } from 'node:module'; const require = __sbCreateRequire(import.meta.url);" },
    alias: { '@switchboard/client': ROOT + 'packages/client/src/index.ts' },
    define: { 'import.meta.url': JSON.stringify(pathToFileURL(ROOT + 'src/cli/bundled-cli.ts').href) },
    logLevel: 'warning',
  });
  const fresh = `${TEST_CLI}.${process.pid}`;
  writeFileSync(fresh, `import './${build}/cli.mjs';\n`);
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

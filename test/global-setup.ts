// Runs once before the suite: bundles src/cli.ts into one file so the many tests that start the CLI as a process
// (serve, sub, chat, check) pay Node's start-up, not tsx's transform of ~100 modules each time (about 2x faster).
// The bundle is the same source: dependencies stay external, the client package comes from its sources (as tsconfig's
// `paths` give it to tsx), and import.meta.url reads as a file two levels under the root, as in src/, so pages, the
// inspector's files and the dev-mode client bundle are found exactly as under tsx.
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { TEST_CLI } from './helpers/cli.js';

export default async function setup(): Promise<void> {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const deps = (file: string) => Object.keys((JSON.parse(readFileSync(root + file, 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {});
  const external = [...deps('package.json'), ...deps('packages/client/package.json')].filter((d) => d !== '@switchboard/client');
  mkdirSync(new URL('.', pathToFileURL(TEST_CLI)), { recursive: true });
  await build({
    entryPoints: [root + 'src/cli.ts'],
    outfile: TEST_CLI,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: [...external, ...external.map((d) => `${d}/*`)],
    alias: { '@switchboard/client': root + 'packages/client/src/index.ts' },
    define: { 'import.meta.url': JSON.stringify(pathToFileURL(root + 'src/cli/bundled-cli.ts').href) },
    // cluster.fork() and the worker pool re-run this file: it must be a runnable entry, not a library.
    logLevel: 'warning',
  });
}

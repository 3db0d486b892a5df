// How tests start the CLI as a process: the bundle test/global-setup.ts made of src/cli.ts (same source, no tsx
// start-up per process), or src/cli.ts through tsx when the bundle is missing.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Where the global setup writes the bundle (`.cache/` is git-ignored). */
export const TEST_CLI = `${ROOT}.cache/test-cli/cli.mjs`;

/** Node's arguments that run the CLI: `spawn(process.execPath, [...cliArgs(), 'serve', ...])`, with cwd at the root. */
export function cliArgs(): string[] {
  return existsSync(TEST_CLI) ? [TEST_CLI] : ['--import', 'tsx', 'src/cli.ts'];
}

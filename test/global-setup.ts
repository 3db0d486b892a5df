// Runs once before the suite: bundles src/cli.ts for every test that starts the CLI as a process (serve, sub, chat,
// check, the docs' `switchboard` commands); see test/helpers/cli.ts.
import { buildTestCli } from './helpers/cli.js';

export default function setup(): void {
  buildTestCli();
}

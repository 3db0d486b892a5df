// The blocks of docs/usage.md marked `<!-- run: ID -->`, run against real brokers (test/docs/runners-usage.ts).
import { runnerTests } from './context.js';
import { USAGE_RUNNERS } from './runners-usage.js';

runnerTests('docs: usage.md', USAGE_RUNNERS);

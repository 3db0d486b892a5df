// The blocks of README.md and docs/client.md marked `<!-- run: ID -->` (and the examples they embed), run against
// real brokers and compared with what really happens (test/docs/runners.ts).
import { runnerTests } from './context.js';
import { README_RUNNERS } from './runners.js';

runnerTests('docs: README.md and docs/client.md', README_RUNNERS);

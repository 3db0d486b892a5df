// The blocks of operations.md, security.md, configuration.md, cluster.md and checker.md marked `<!-- run: ID -->`,
// run against real brokers (test/docs/runners-ops.ts).
import { runnerTests } from './context.js';
import { OPERATIONS_RUNNERS } from './runners-ops.js';

runnerTests('docs: operations, security, configuration, cluster, checker', OPERATIONS_RUNNERS);

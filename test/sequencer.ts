// The order test files start in. Vitest's pool hands the next file of this order to whichever worker is free, so the
// long files must come first, or one of them starts near the end and the suite waits for it alone (a tail).
// Vitest's own order is by the durations in its results cache (node_modules/.vite/vitest), which a fresh clone
// (CI) does not have: it then starts the largest files first, and the Paho suite (a 51-line file running 18 s of
// the suite's own sleeps) started at 97 s of a 130 s run. So the files known to be long go first, longest first,
// whatever the cache holds; the rest keep Vitest's order. The seconds only order the list: a stale figure costs
// time, never a result. Refresh them from a run's JSON report (vitest run --reporter=json --outputFile=r.json):
//   node -e 'for (const f of require("./r.json").testResults) console.log(((f.endTime - f.startTime) / 1000).toFixed(1), f.name)' | sort -rn | head -30
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Seconds each file took in a full run with four workers (2026-12-03, load 2-7: three other engineers at work), longest first. */
export const LONG_FILES: Record<string, number> = {
  'test/package/install.test.ts': 21.4,
  'test/cluster/redis-cluster-sharded.test.ts': 19.8,
  'test/mqtt/paho.test.ts': 19.7,
  'test/docs/operations.test.ts': 19.5,
  'test/check.test.ts': 15.4,
  'test/mqtt/cluster.test.ts': 13.9,
  'test/cluster/heartbeat.test.ts': 13.6,
  'test/cluster/redis-cluster.test.ts': 10.9,
  'test/cluster/workers.test.ts': 10.2,
  'test/e2e/chat.browser.test.ts': 9.7,
  'test/cluster/partition.test.ts': 8.8,
  'test/client/chat-page.browser.test.ts': 8.4,
  'test/e2e/inspect.browser.test.ts': 8.2,
  'test/cluster/failover.test.ts': 7.9,
  'test/cluster/redis-cluster-failover.test.ts': 6.6,
  'test/liveness.test.ts': 6.4,
  'test/client/token-refresh-broker.test.ts': 6.1,
  'test/sse/fallback.browser.test.ts': 5.7,
  'test/client/sub-cli.test.ts': 5.7,
  'test/security/churn.test.ts': 5.6,
  'test/cluster/failover-replica.test.ts': 5.3,
  'test/security/who.test.ts': 4.6,
  'test/cluster/deployment.test.ts': 4.4,
  'test/cluster/shards.test.ts': 4.2,
  'test/shutdown-log-order.test.ts': 3.7,
  'test/cluster/hung.test.ts': 3.6,
  'test/docs/readme.test.ts': 3.6,
  'test/sse/check.test.ts': 3.4,
  'test/cluster/publish-batch.test.ts': 3.4,
  'test/check/transports.test.ts': 3.2,
  'test/inspect.page.test.ts': 2.9,
  'test/client/chat-cli.test.ts': 2.7,
  'test/security/token-expiry.test.ts': 2.7,
  'test/security/stalls.test.ts': 2.5,
  'test/inspect.stately.test.ts': 2.5,
};

export default class LongFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const seconds = (f: TestSpecification) => LONG_FILES[relative(this.ctx.config.root, f.moduleId)] ?? 0;
    // Array.prototype.sort is stable: files not in the list (0 s) keep Vitest's order among themselves.
    return sorted.sort((a, b) => seconds(b) - seconds(a));
  }
}

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

/** Seconds each file took in a full run with five workers (2026-12-05 23:25 UTC, main 07904da, load 0.7 at the start), longest first. */
export const LONG_FILES: Record<string, number> = {
  'test/package/install.test.ts': 28.5,
  'test/check.test.ts': 22.4,
  'test/cluster/redis-cluster-sharded.test.ts': 18.0,
  'test/docs/operations.test.ts': 17.1,
  'test/mqtt/paho.test.ts': 15.7,
  'test/cluster/sentinel.test.ts': 15.0, // (added 2026-12-06: a Sentinel, two failovers)
  'test/e2e/chat.browser.test.ts': 15.0,
  'test/client/chat-page.browser.test.ts': 13.3,
  'test/cluster/partition.test.ts': 12.9,
  'test/cluster/tls-cluster.test.ts': 11.7, // (added 2026-12-06: a Redis Cluster, restarted on rotated certificates, and a Sentinel over TLS, alone 11.7 s)
  'test/mqtt/cluster.test.ts': 11.0,
  'test/mqtt/claim-lost.test.ts': 10.4,
  'test/cluster/heartbeat.test.ts': 8.9,
  'test/e2e/inspect.browser.test.ts': 8.4,
  'test/cluster/check.test.ts': 8.1,
  'test/cluster/publish-batch.test.ts': 7.8,
  'test/cluster/redis-cluster.test.ts': 7.7,
  'test/cluster/workers.test.ts': 7.2,
  'test/cluster/redis-cluster-failover.test.ts': 6.6,
  'test/liveness.test.ts': 6.6,
  'test/mqtt/disconnect-expiry.test.ts': 6.5,
  'test/security/presence.test.ts': 6.3,
  'test/mqtt/session-releases.test.ts': 6.1,
  'test/cluster/shards-moved.test.ts': 6.1,
  'test/client/sub-cli.test.ts': 6.1,
  'test/cluster/hung.test.ts': 5.6,
  'test/cluster/failover-replica.test.ts': 5.3,
  'test/cluster/failover.test.ts': 5.2,
  'test/resume-trimmed.test.ts': 5.2,
  'test/cluster/shards.test.ts': 4.5,
  'test/mqtt/will-delay.test.ts': 4.4,
  'test/mqtt/session-expiry-held.test.ts': 4.2,
  'test/security/who.test.ts': 4.0,
  'test/cluster/differential-two-nodes.prop.test.ts': 3.9,
  'test/client/sse-token-refresh.test.ts': 3.9,
  'test/sse/fallback.browser.test.ts': 3.9,
  'test/security/churn.test.ts': 3.8,
  'test/cluster/deployment.test.ts': 3.6,
  'test/inspect.page.test.ts': 3.5,
  'test/sse/crash-close.test.ts': 3.4,
  'test/mqtt/resume-window-flood.test.ts': 3.4,
  'test/check/transports.test.ts': 3.4,
  'test/security/token-expiry.test.ts': 3.3,
  'test/docs/readme.test.ts': 3.3,
  'test/mqtt/interop.test.ts': 3.1,
  'test/security/http-sockets.test.ts': 3.0,
  'test/sse/check.test.ts': 3.0,
  'test/shutdown-batch.test.ts': 3.0,
  'test/cluster/reaped-window.test.ts': 3.0,
  'test/client/token-refresh-broker.test.ts': 2.9,
  'test/e2e/inspect-stale-viewer.browser.test.ts': 2.8,
  'test/security/stalls.test.ts': 2.6,
  'test/inspect.stately.test.ts': 2.6,
};

export default class LongFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const seconds = (f: TestSpecification) => LONG_FILES[relative(this.ctx.config.root, f.moduleId)] ?? 0;
    // Array.prototype.sort is stable: files not in the list (0 s) keep Vitest's order among themselves.
    return sorted.sort((a, b) => seconds(b) - seconds(a));
  }
}

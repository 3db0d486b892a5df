// BrokerStats: plain counters bumped on the hot path; the metrics endpoint reads them at scrape time.
import type { ErrorCode } from '../protocol/errors.js';

export class BrokerStats {
  published = 0;
  delivered = 0;
  slowConsumerCloses = 0;
  /** Directs refused (rate_limited) because their recipient's share for directs was full. */
  directsRefused = 0;
  /** Cluster: messages this node received from Redis, and the channels it listens on for them (interest routing). */
  clusterMessagesReceived = 0;
  clusterChannels = 0;
  /** Cluster: messages lost to this node (its stream no longer held them when it filled a gap), and messages of an epoch their topic had left that came late (dropped). */
  clusterMessagesLost = 0;
  clusterMessagesStale = 0;
  /** Cluster: passes this node's reaper finished over the node set, and the dead nodes it reaped (engine/redis/reaper.ts). */
  clusterReaperPasses = 0;
  clusterNodesReaped = 0;
  connectionsOpened = 0;
  connectionsClosed = 0;
  crashes = 0;
  readonly errors = new Map<ErrorCode, number>();
  /** Traffic of connections already gone; live ones are summed from their links at scrape time. */
  readonly retired = { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, dropped: 0 };

  /** Adds a leaving connection's counters to the totals (called once, when it leaves the registry). */
  retire(link: { framesIn: number; bytesIn: number; mailbox: { framesOut: number; bytesOut: number; dropped: number } }): void {
    const r = this.retired;
    r.framesIn += link.framesIn;
    r.bytesIn += link.bytesIn;
    r.framesOut += link.mailbox.framesOut;
    r.bytesOut += link.mailbox.bytesOut;
    r.dropped += link.mailbox.dropped;
  }

  countError(code: ErrorCode): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }
}

// BrokerStats: plain counters bumped on the hot path; the metrics endpoint reads them at scrape time.
import type { ErrorCode } from '../protocol/errors.js';

export class BrokerStats {
  published = 0;
  delivered = 0;
  slowConsumerCloses = 0;
  connectionsOpened = 0;
  connectionsClosed = 0;
  crashes = 0;
  readonly errors = new Map<ErrorCode, number>();

  countError(code: ErrorCode): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }
}

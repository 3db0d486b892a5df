// Occupancy of one process (the in-memory engine's): counts local holders of each filter and tells its listener of
// the first holder in and the last out (webhooks' topic.occupied / topic.vacated). The interfaces are in engine.ts;
// the cluster's version, counted across nodes in Redis, is src/engine/redis/occupancy.ts.
import type { Occupancy, OccupancyListener } from './engine.js';

/** Counts holders per filter in this process (keys come from clients: a Map). */
export class LocalOccupancy implements Occupancy {
  private readonly holders = new Map<string, number>();

  constructor(private readonly listener: OccupancyListener) {}

  taken(filter: string): void {
    const n = (this.holders.get(filter) ?? 0) + 1;
    this.holders.set(filter, n);
    if (n === 1) this.listener.occupied(filter);
  }

  dropped(filter: string): void {
    const n = this.holders.get(filter);
    if (n === undefined) return;
    if (n > 1) return void this.holders.set(filter, n - 1);
    this.holders.delete(filter);
    this.listener.vacated(filter);
  }

  async close(): Promise<void> {}
}

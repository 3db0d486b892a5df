// The deployment of one process: what webhooks and the server API need of it (interfaces in engine.ts): who holds a
// filter (first holder in, last out), commands to a client, idempotency keys of server-side publishes. The cluster's
// versions are in src/engine/redis/ (occupancy.ts, client-commands.ts, publish-keys.ts).
import { ProtocolError } from '../protocol/errors.js';
import type { ClientCommand, CommandExecutor, CommandOutcome, Occupancy, OccupancyListener, PublishKeys, PublishResult } from './engine.js';

export type { ClientCommand, CommandExecutor, CommandOutcome, Occupancy, OccupancyListener, PublishKeys };

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

export const notConnected = (target: string): CommandOutcome => ({ ok: false, code: 'not_found', message: `no client '${target.slice(0, 64)}' is connected` });

/** How long a publish's idempotency key is remembered. */
export const PUBLISH_KEY_MS = 10 * 60_000;
const LOCAL_KEYS_MAX = 10_000;

/** This process's keys (bounded; oldest first out). */
export class LocalPublishKeys implements PublishKeys {
  private readonly results = new Map<string, { result: PublishResult; expires: number }>();

  async once(key: string, publish: () => Promise<PublishResult | ProtocolError>): Promise<(PublishResult & { duplicate?: true }) | ProtocolError> {
    const hit = this.results.get(key);
    if (hit && hit.expires > Date.now()) return { ...hit.result, duplicate: true };
    if (hit) this.results.delete(key);
    const result = await publish();
    if (result instanceof ProtocolError) return result;
    this.results.set(key, { result, expires: Date.now() + PUBLISH_KEY_MS });
    if (this.results.size > LOCAL_KEYS_MAX) this.results.delete(this.results.keys().next().value!);
    return result;
  }
}

// What the application-facing layers (webhooks, the server API) need of the whole deployment, one process or every
// node of a cluster: who holds a filter (first holder in, last out), commands to a client wherever it is connected,
// and idempotency keys of server-side publishes. The in-memory engine's versions are here; the cluster's are in
// src/engine/redis/ (occupancy.ts, client-commands.ts, publish-keys.ts).
import { ProtocolError } from '../protocol/errors.js';
import type { PublishResult } from './engine.js';

/** Hears when the first holder of a filter in the deployment arrives and when the last one leaves: once each. */
export interface OccupancyListener {
  occupied(filter: string): void;
  vacated(filter: string): void;
}

/** Told of every local subscription taken and dropped; tells its listener of the deployment's first in and last out. */
export interface Occupancy {
  taken(filter: string): void;
  dropped(filter: string): void;
  /** Resolves once what it was told has reached the deployment (the cluster's store) and it holds nothing more. */
  close(): Promise<void>;
}

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

/** A server API command to one client (POST /api/clients/disconnect, /subscribe, /unsubscribe). */
export type ClientCommand =
  | { op: 'disconnect'; code: number; reason: string }
  | { op: 'subscribe'; topic: string; presence: boolean }
  | { op: 'unsubscribe'; topic: string };

/** What came of a command: done (to that client), or a protocol error code and message, as plain data (it crosses nodes). */
export type CommandOutcome = { ok: true; client: { id: string; name: string } } | { ok: false; code: CommandErrorCode; message: string };
export type CommandErrorCode = 'not_found' | 'forbidden' | 'too_large' | 'unavailable' | 'outcome_unknown';

/** Runs a command on a client of this process (registered by the server API, which knows connections). */
export type CommandExecutor<S> = (session: S, command: ClientCommand) => CommandOutcome;

export const notConnected = (target: string): CommandOutcome => ({ ok: false, code: 'not_found', message: `no client '${target.slice(0, 64)}' is connected` });

/** Idempotency keys of server-side publishes: a retried publish within the window is answered, not repeated. */
export interface PublishKeys {
  once(key: string, publish: () => Promise<PublishResult | ProtocolError>): Promise<(PublishResult & { duplicate?: true }) | ProtocolError>;
}

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

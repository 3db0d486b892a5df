// The engine seam: everything several broker processes must agree on (per-topic seq + epoch and history, routing
// of subscriptions, presence, unique names, direct delivery, who) behind one interface. One process uses the
// in-memory engine; a cluster would use one backed by a shared store. Sessions, transports, the HTTP API, metrics
// and the actors page use this interface and its read-only queries, never an engine's fields.
import type { Grant } from '../auth/grant.js';
import type { FrameId, ProtocolError } from '../protocol/errors.js';
import type { ClientFrame, ClientInfo, FrameOf, PublicClient, ServerFrame, Transport } from '../protocol/frames.js';
import type { BrokerStats } from './stats.js';
import type { Outgoing } from '../protocol/outgoing.js';

/** What an engine needs of a connection's outbound queue. */
export interface SessionMailbox {
  /** Queues `out`; false when refused (sealed, or overflowed: the connection is then a slow consumer). */
  push(out: Outgoing): boolean;
  /** The most messages it holds before its consumer counts as slow. */
  readonly capacity: number;
  readonly depth: number;
  /** The same in bytes: at most `byteCapacity`, `bytes` queued now. */
  readonly byteCapacity: number;
  readonly bytes: number;
  /** Whether a direct of `bytes` fits the recipient's budget for directs. */
  acceptsDirect(bytes: number): boolean;
  /** The last queued frame while it is still unwritten (presence coalescing), and a way to replace or drop it. */
  readonly tail: Outgoing | undefined;
  replaceTail(next: Outgoing | null): void;
}

/** A token bucket a session's costly requests are charged to. */
export interface Charge {
  charge(tokens: number): void;
  take(): 'ok' | 'limited' | 'flooding';
}

/** The engine's view of one local connection (implemented by the session layer's Link). */
export interface Session {
  readonly id: string;
  name: string;
  readonly addr: string;
  readonly transport: Transport;
  readonly mailbox: SessionMailbox;
  /** Filters it holds (add with hold()). */
  readonly subscriptions: Set<string>;
  hold(filter: string): void;
  /** Filters it watches for presence (add with watch()). */
  readonly presence: Set<string>;
  watch(filter: string): void;
  grant: Grant | undefined;
  nameFixed: boolean;
  /** Inbound rate of its reader: costly replies are charged to it. */
  rate: Charge | undefined;
  /** Its own rename budget (made by the first rename). */
  renames: Charge | undefined;
  /** online, idle, closing, …: what `who` shows. */
  readonly state: string;
  send(frame: ServerFrame): boolean;
  info(): ClientInfo;
  /** What other clients may see of it (no address). */
  publicInfo(): PublicClient;
}

export interface JoinRequest {
  name?: string | undefined;
  topics?: readonly string[] | undefined;
  /** Filters joined with presence on (the TCP chat room). */
  presenceTopics?: readonly string[] | undefined;
  /** From a verified token: the name (fixed) and the filters the client may publish and subscribe to. */
  grant?: Grant | undefined;
}

export type LeaveCause = 'leave' | 'timeout';

export interface PublishResult {
  seq: number;
  epoch: string;
  delivered: number;
  /** A retry of a keyed publish within the key's window: the first publish's position; nothing was delivered. */
  duplicate?: true;
}

/** A topic as `/api/topics` shows it. */
export interface TopicView {
  topic: string;
  wildcard: boolean;
  subscribers: number;
  lastSeq: number | null;
  epoch: string | null;
}

// ---- Occupancy (webhooks' topic.occupied / topic.vacated), of one process or of every node of a cluster ----

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

/**
 * What tests and tools may read of an engine's local state, as answers rather than the engine's own structures (its
 * registry, topic index and history stay free to change shape). Read-only.
 */
export interface EngineInspection<S extends Session = Session> {
  /** Clients connected to this process. */
  clientCount(): number;
  clients(): S[];
  /** A client of this process by id, then by name. */
  findClient(idOrName: string): S | undefined;
  /** Whether `session` is registered (joined and not yet gone). */
  isConnected(session: S): boolean;
  /** Clients of this process holding exactly `filter` (wildcards are not matched: `a/#` is one filter). */
  holders(filter: string): S[];
  /** Clients of this process a publish to concrete `topic` reaches. */
  reached(topic: string): S[];
  /** Filters held by clients of this process, each once. */
  filters(): string[];
  /** Clients of this process watching presence on exactly `filter`. */
  watcherCount(filter: string): number;
  /** Topics the local history keeps, and the bytes of the topic names it keeps (live and forgotten). */
  historyTopicCount(): number;
  historyNamesBytes(): number;
}

export interface Engine<S extends Session = Session> {
  /** Changes whenever the engine may have lost topics it can no longer name (docs/protocol.md, Positions). */
  readonly life: string;

  // Sessions of this process: the supervisor joins and reaps them.
  /** Registers `session`, sends its `hello`, applies the subscriptions asked for at connect. */
  join(session: S, request: JoinRequest): void;
  /** Unregisters `session` and tells the presence watchers of its filters. */
  leave(session: S, cause: LeaveCause): void;
  /** Removes every trace of a session after a fault, without announcing anything. */
  forget(session: S): void;
  /** `session` went idle or became active again. */
  activity(session: S, event: 'idle' | 'active'): void;
  /** Whether `session` is closed once idle (the --idle-close policy). */
  closesWhenIdle(session: S): boolean;

  // Requests of a session (the fast ingest path: straight from its reader).
  handle(session: S, frame: RequestFrame): void;
  /**
   * A verified fresh token for `session` (`auth`): its grant replaces the old one, filters the new grant does not
   * allow are dropped (an `unsub` each, and a `forbidden` error naming it), then the ack with the token's `exp`.
   */
  regrant(session: S, grant: Grant, id: FrameId | undefined): void;
  /**
   * Server-side publish (HTTP API, MQTT wills): no sender; with `key`, once per (topic, key) within its window.
   * Answered at once by the in-memory engine, once the store has it on a cluster.
   */
  publish(topic: string, data: unknown, key?: string, qos?: 0 | 1 | 2): PublishResult | ProtocolError | Promise<PublishResult | ProtocolError>;
  /** Answers a request the session layer could not handle. */
  fail(session: S, err: ProtocolError): void;

  // Read-only queries.
  readonly sessionCount: number;
  sessions(): IterableIterator<S>;
  /** A local session by id, then by name. */
  find(idOrName: string): S | undefined;
  isNameFree(name: string): boolean;
  /** The chat room (--room) is over --room-announce-max: logins and logouts there are not announced. */
  roomIsQuiet(): boolean;
  topics(limit: number): { total: number; topics: TopicView[] };
  /** Counters of this process (metrics read them at scrape time; the session layer adds its own). */
  readonly stats: BrokerStats;
  /** What tests and tools may read of this process's clients, filters, watchers and history. */
  readonly inspect: EngineInspection<S>;

  // Webhooks: filters held in the whole deployment (this process, or every node of a cluster; src/engine/occupancy.ts).
  /** Counts local holders of each filter; `listener` hears the deployment's first holder in and last out, once each. */
  occupancy(listener: OccupancyListener): Occupancy;

  // Where the engines differ in time, not in meaning (the in-memory engine answers at once).
  /** A fresh client id (`c<digits>`): unique in this process, or across every process sharing the store. */
  nextSessionId(): string;
  /** Answers a `ping` after every earlier request of `session` and every delivery already on its way to it. */
  ping(session: S, id: FrameId | undefined): void;
  /** Server-side publish that waits for the store (HTTP API, MQTT wills); `unavailable` when it cannot take it. */
  publishAsync(topic: string, data: unknown, key?: string, qos?: 0 | 1 | 2): Promise<PublishResult | ProtocolError>;
  /** `ok`, or `degraded` while a shared store is unreachable (shown by /healthz and /metrics). */
  health(): 'ok' | 'degraded';
  /** Connects to the store (if any) before the broker listens. */
  start(): Promise<void>;
  /** Announces the leaves still pending, withdraws this process from the store (if any), closes its connections. */
  close(): Promise<void>;
}

let lastSessionId = 0;

/** A client id unique in this process (`c1`, `c2`, …): the in-memory engine's, and a Link's made without an engine. */
export function localSessionId(): string {
  return `c${++lastSessionId}`;
}

/** Frames the engine answers: ping, quit and auth are the session layer's, rpc the application backend's (src/hooks/). */
export type RequestFrame = Exclude<ClientFrame, { op: 'ping' | 'quit' | 'auth' | 'rpc' }>;
export type { FrameId, FrameOf };

// Persistent MQTT sessions and retained messages: the stores' interfaces, and their implementations in this
// process's memory (one broker; the Redis ones that a cluster shares are in redis-sessions.ts and redis-retained.ts).
// A session kept after its connection ends holds no messages: only its filters, the positions it reached per
// topic and its unacknowledged QoS 1/2 messages; on reconnect it resumes from the topics' history. Bounded in
// sessions, in positions per session, and retained messages in count and bytes.
import type { QoS } from 'mqtt-packet';
import type { Outgoing } from '../../protocol/outgoing.js';
import type { PacketProperties } from './payload.js';
import { isWildcard } from '../../protocol/topic.js';
import { mqttMatches } from './match.js';
import type { Grant } from '../../auth/grant.js';

export interface Position {
  seq: number;
  epoch: string;
}

/** An outbound QoS 1 or 2 message not yet fully acknowledged; kept across reconnects of a persistent session. */
export interface Inflight {
  qos: 1 | 2;
  /** PUBREC received: PUBREL sent, PUBCOMP awaited. */
  released: boolean;
  topic: string;
  /**
   * The message (its payload and 5.0 properties are built from it) or the payload itself: a retained message's, or
   * one a session stored in Redis brought back (`properties` and `at` then stand for the rest of the message).
   */
  payload: Outgoing | Buffer;
  retain: boolean;
  /** The 5.0 Subscription Identifiers it went out with (a resend carries them again). */
  ids?: number[] | undefined;
  /** With a Buffer payload: its message's 5.0 properties as published or kept (a resend carries them again). */
  properties?: PacketProperties | undefined;
  /** With a Buffer payload: ms since 1970 when its message was published or kept (a resend's expiry counts down from then). */
  at?: number | undefined;
}

export interface StoredSession {
  filters: Map<string, QoS>;
  /** Where it got to per topic (the last message written to it). */
  positions: Map<string, Position>;
  /** The engine life its positions are from (the `life` of a sub ack). */
  life: string | undefined;
  inflight: Map<number, Inflight>;
  nextPacketId: number;
  /** QoS 2 packet ids received from the client and not released yet (PUBREL): a resend of one is not published again. */
  received?: number[] | undefined;
  /** 5.0 filters subscribed with No Local. */
  noLocal?: string[] | undefined;
  /** 5.0 filters subscribed with Retain As Published. */
  retainAsPublished?: string[] | undefined;
  /** 5.0 filters subscribed with a Subscription Identifier, and it. */
  subscriptionIds?: [string, number][] | undefined;
  /**
   * The broker ids of its last connections (at most OWN_IDS, newest last): with No Local, a resume does not replay to
   * it what one of them published.
   */
  ids?: string[] | undefined;
  /** The user it was kept for (the token's name; none without auth): no other user resumes it. */
  user?: string | undefined;
  /**
   * The owner (`<node>/<n>`) of the connection that kept it with a 5.0 will waiting for its delay (wills.ts): the next
   * connection to claim the session settles that will (dropped when it resumes the session, published when not).
   */
  will?: string | undefined;
  /** ms since 1970 after which it is gone; Infinity: kept until evicted (3.1.1 clean session 0). */
  expiresAt: number;
}

/** Connections of a session whose publishes No Local still holds back on resume. */
export const OWN_IDS = 8;

/** Topics remembered per session (those it received last): the engine takes at most this many positions per sub. */
export const POSITIONS_MAX = 1000;

/**
 * What a connection's claim on its client id's session found: the session it now holds (undefined: none kept, or
 * expired), or `heldBy`, the owner still holding it (an earlier connection that has not kept or released it yet).
 */
export type SessionClaim = { session: StoredSession | undefined; heldBy?: undefined } | { heldBy: string };

/**
 * Where sessions wait for their clients. Each connection with a client id is the session's owner from its CONNECT
 * until it keeps or releases it (`owner`: a token unique to that connection): a newer connection's claim waits for
 * an owner that is still ending, and an owner whose claim was overridden (`force`) can no longer keep anything, so
 * a session left behind late never overwrites the session of a newer connection.
 */
export interface SessionStore {
  /**
   * Makes `owner` the holder of `clientId`'s session and takes what was kept for it. `heldBy` when another owner
   * holds it, unless `force` (that owner's later keep is then refused). With `resume` what was kept stays stored
   * until the owner keeps a newer one or releases it with `drop`: a claim whose answer was lost (Redis hung, a
   * connection broken), a connection that never opened or whose keep failed, leave the session to the next
   * connection. Without, it is removed (a clean session).
   */
  take(clientId: string, owner: string, force?: boolean, resume?: boolean): Promise<SessionClaim>;
  /**
   * Marks the session `owner` holds as ending with its connection (5.0 session expiry 0), once that connection is
   * accepted: a claim that overrides this hold, or the reaping of its node, then removes the session (a refused
   * CONNECT never marked it, so it leaves the session). False when `owner` no longer holds it; 'unknown' when the mark
   * was sent and not answered (it may have been made). Rejects when the store surely did not make it.
   */
  markEnding(clientId: string, owner: string): Promise<boolean | 'unknown'>;
  /**
   * Keeps `session` for `clientId` until it expires, or until more recently kept ones push it out, and ends
   * `owner`'s hold; false, keeping nothing, when `owner` no longer holds it (a newer connection took it over).
   * Rejects when the store cannot answer.
   */
  keep(clientId: string, owner: string, session: StoredSession): Promise<boolean>;
  /**
   * Ends `owner`'s hold without keeping anything new; with `drop` (a session that ends with its connection) what is
   * stored for it goes too, otherwise it stays for the next connection (a claim that never became a connection, a
   * keep that failed). Never rejects.
   */
  release(clientId: string, owner: string, drop?: boolean): Promise<void>;
}

/** The last retained message of each topic. */
export interface RetainedStore {
  /**
   * Keeps `message` as its topic's retained message (an empty payload clears it [MQTT-3.3.1-10]). `order`: the
   * publish's position; a message older (same epoch, lower seq) than the one kept is ignored, so the last publish wins.
   */
  set(message: Retained, order?: Position): Promise<void>;
  /** Retained messages of the topics `filter` matches, at most `limit`. */
  matching(filter: string, limit: number): Promise<Retained[]>;
}

/** The position each topic matching a filter has now (what a session kept now would resume after). */
export type TopicPositions = (filters: readonly string[]) => Promise<Map<string, [string, Position][]>>;

export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, StoredSession>();
  /** Client id → the owner holding its session (a connection from its CONNECT until it kept or released it). */
  private readonly owners = new Map<string, string>();
  /** What a live connection resumed, stored until it keeps a newer one or drops it: not counted in the bound (its client is not away). */
  private readonly resumed = new Map<string, StoredSession>();
  /** Client id → its holder, whose session ends with its connection: a claim overriding that hold drops it. */
  private readonly ending = new Map<string, string>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.sessions.size;
  }

  take(clientId: string, owner: string, force = false, resume = false): Promise<SessionClaim> {
    const holder = this.owners.get(clientId);
    if (holder !== undefined && holder !== owner && !force) return Promise.resolve({ heldBy: holder });
    if (holder !== undefined && holder !== owner && this.ending.get(clientId) === holder) this.resumed.delete(clientId);
    this.ending.delete(clientId);
    this.owners.set(clientId, owner);
    const s = this.sessions.get(clientId) ?? this.resumed.get(clientId);
    this.sessions.delete(clientId);
    if (resume && s) this.resumed.set(clientId, s);
    else this.resumed.delete(clientId);
    return Promise.resolve({ session: s && s.expiresAt > Date.now() ? s : undefined });
  }

  markEnding(clientId: string, owner: string): Promise<boolean> {
    if (this.owners.get(clientId) !== owner) return Promise.resolve(false);
    this.ending.set(clientId, owner);
    return Promise.resolve(true);
  }

  /** The least recently stored one goes when full (expired ones first). */
  keep(clientId: string, owner: string, session: StoredSession): Promise<boolean> {
    if (this.owners.get(clientId) !== owner) return Promise.resolve(false);
    // No sessions kept at all (--mqtt-sessions 0): nothing to make room in.
    if (this.max === 0) return this.release(clientId, owner, true).then(() => false);
    this.owners.delete(clientId);
    this.ending.delete(clientId);
    this.resumed.delete(clientId);
    this.store(clientId, session);
    return Promise.resolve(true);
  }

  release(clientId: string, owner: string, drop = false): Promise<void> {
    if (this.owners.get(clientId) !== owner) return Promise.resolve();
    this.owners.delete(clientId);
    this.ending.delete(clientId);
    const left = this.resumed.get(clientId);
    this.resumed.delete(clientId);
    if (drop) this.sessions.delete(clientId);
    else if (left && this.max > 0) this.store(clientId, left); // its client is away again
    return Promise.resolve();
  }

  /** Stores a session of a client that is away, making room: expired ones first, then the least recently stored. */
  private store(clientId: string, session: StoredSession): void {
    const now = Date.now();
    this.sessions.delete(clientId);
    if (this.sessions.size >= this.max) {
      for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
      while (this.sessions.size >= this.max) this.sessions.delete(this.sessions.keys().next().value!);
    }
    this.sessions.set(clientId, session);
  }
}

export interface Retained {
  topic: string;
  payload: Buffer;
  qos: QoS;
  /** Its 5.0 properties, and when it was published (its message expiry counts down from then). */
  properties?: PacketProperties | undefined;
  at?: number;
}

/** Retained messages kept at most (--mqtt-retained-bytes bounds them in bytes). */
export const RETAINED_MAX = 100_000;

/** The last retained message of each topic in this process, bounded in count and bytes (the oldest goes first). */
export class MemoryRetainedStore implements RetainedStore {
  private readonly messages = new Map<string, Retained>();
  private bytes = 0;

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.messages.size;
  }

  /** One process numbers its publishes in the order they are answered: the last `set` is the last publish. */
  set(message: Retained): Promise<void> {
    const { topic, payload } = message;
    this.clear(topic);
    const cost = payload.length + Buffer.byteLength(topic);
    if (payload.length === 0 || cost > this.maxBytes) return Promise.resolve();
    while (this.messages.size >= this.maxMessages || this.bytes + cost > this.maxBytes) {
      const oldest = this.messages.keys().next().value;
      if (oldest === undefined) break;
      this.clear(oldest);
    }
    this.messages.set(topic, { ...message, at: message.at ?? Date.now() });
    this.bytes += cost;
    return Promise.resolve();
  }

  private clear(topic: string): void {
    const old = this.messages.get(topic);
    if (!old) return;
    this.messages.delete(topic);
    this.bytes -= old.payload.length + Buffer.byteLength(topic);
  }

  matching(filter: string, limit: number): Promise<Retained[]> {
    return Promise.resolve(this.match(filter, limit));
  }

  private match(filter: string, limit: number): Retained[] {
    if (this.messages.size === 0) return [];
    if (!isWildcard(filter)) {
      const r = this.messages.get(filter);
      return r ? [r] : [];
    }
    const out: Retained[] = [];
    for (const r of this.messages.values()) {
      if (out.length >= limit) break;
      if (mqttMatches(filter, r.topic)) out.push(r);
    }
    return out;
  }
}

/**
 * The kept session a connection resumes: only its own user's (a client id is the client's to choose: another token
 * reusing it starts clean, and gets none of the first user's unacknowledged messages; `user` is undefined for an
 * anonymous client, which never resumes a user's session), and of its unacknowledged
 * messages only those the grant may still read (a narrower token than the session was kept under).
 */
export function sessionFor(stored: StoredSession | undefined, grant: Grant | undefined, user: string | undefined): StoredSession | undefined {
  if (!stored || stored.user !== user) return undefined;
  if (grant) for (const [pid, flight] of stored.inflight) if (!grant.maySubscribe(flight.topic)) stored.inflight.delete(pid);
  return stored;
}

// Persistent MQTT sessions and retained messages of this process (docs/mqtt.md, Sessions and Retained messages).
// A session kept after its connection ends holds no messages: only its filters, the positions it reached per
// topic and its unacknowledged QoS 1/2 messages; on reconnect it resumes from the topics' history. Bounded in
// sessions, in positions per session, and retained messages in count and bytes.
import type { QoS } from 'mqtt-packet';
import type { Outgoing } from '../../protocol/outgoing.js';
import type { PacketProperties } from './payload.js';
import { isWildcard } from '../../protocol/topic.js';
import { mqttMatches } from './match.js';

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
  /** The message (its payload is built from it) or, for a retained message, the payload itself. */
  payload: Outgoing | Buffer;
  retain: boolean;
}

export interface StoredSession {
  filters: Map<string, QoS>;
  /** Where it got to per topic (the last message written to it). */
  positions: Map<string, Position>;
  /** The engine life its positions are from (the `life` of a sub ack). */
  life: string | undefined;
  inflight: Map<number, Inflight>;
  nextPacketId: number;
  /** ms since 1970 after which it is gone; Infinity: kept until evicted (3.1.1 clean session 0). */
  expiresAt: number;
}

/** Topics remembered per session (those it received last): the engine takes at most this many positions per sub. */
export const POSITIONS_MAX = 1000;

export class SessionStore {
  private readonly sessions = new Map<string, StoredSession>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.sessions.size;
  }

  /** The session of `clientId`, removed from the store (the connection now holds it); undefined if none or expired. */
  take(clientId: string, now = Date.now()): StoredSession | undefined {
    const s = this.sessions.get(clientId);
    if (!s) return undefined;
    this.sessions.delete(clientId);
    return s.expiresAt > now ? s : undefined;
  }

  /** Keeps `session` for `clientId`; the least recently stored one goes when full (expired ones first). */
  keep(clientId: string, session: StoredSession, now = Date.now()): void {
    this.sessions.delete(clientId);
    if (this.sessions.size >= this.max) {
      for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
      while (this.sessions.size >= this.max) this.sessions.delete(this.sessions.keys().next().value!);
    }
    this.sessions.set(clientId, session);
  }

  drop(clientId: string): void {
    this.sessions.delete(clientId);
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

/** The last retained message of each topic, bounded in count and bytes (the oldest goes first). */
export class RetainedStore {
  private readonly messages = new Map<string, Retained>();
  private bytes = 0;

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.messages.size;
  }

  /** An empty payload clears the topic's retained message [MQTT-3.3.1-10]. */
  set(topic: string, payload: Buffer, qos: QoS, properties?: PacketProperties, at = Date.now()): void {
    this.clear(topic);
    if (payload.length === 0) return;
    const cost = payload.length + topic.length;
    if (cost > this.maxBytes) return;
    while (this.messages.size >= this.maxMessages || this.bytes + cost > this.maxBytes) {
      const oldest = this.messages.keys().next().value;
      if (oldest === undefined) break;
      this.clear(oldest);
    }
    this.messages.set(topic, { topic, payload, qos, properties, at });
    this.bytes += cost;
  }

  private clear(topic: string): void {
    const old = this.messages.get(topic);
    if (!old) return;
    this.messages.delete(topic);
    this.bytes -= old.payload.length + topic.length;
  }

  /** Retained messages of the topics `filter` matches, at most `limit`. */
  matching(filter: string, limit: number): Retained[] {
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

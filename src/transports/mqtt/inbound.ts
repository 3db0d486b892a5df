// The inbound side of an MQTT connection: each packet its client sends after CONNECT becomes the broker's own
// requests (pub, sub, unsub, ping, quit) through the connection's FrameReader, so every limit and grant applies as on
// any transport, and the MQTT exchanges the broker answers itself (PUBCOMP, PUBREL, PUBREC again for a resent QoS 2
// PUBLISH) are queued as answers. What it needs of its session comes explicitly, as an InboundSession; a packet no
// client may send, or one past the broker's Receive Maximum (5.0), is a protocol violation, which the transport
// closes the connection with.
import type { Packet, QoS } from 'mqtt-packet';
import type { FrameReader } from '../../actors/reader.js';
import type { Flights } from './flights.js';
import { RECEIVE_MAXIMUM_EXCEEDED, type InboundQuota } from './flow.js';
import { PACKET_ID_NOT_FOUND, SHARED_NOT_SUPPORTED } from './codes.js';
import { dataOfPayload } from './payload.js';
import { CLIENT_ALIASES_MAX } from './aliases.js';
import { TOPIC_LIMITS } from '../../protocol/topic.js';
import type { AckGroup, Pending } from './pending.js';
import type { SessionExpiry } from './expiry.js';

/** What a client's packets need of the MQTT session they are for. */
export interface InboundSession {
  /** The connection's reader: the requests go through it, counted and limited as any transport's. */
  readonly reader: FrameReader;
  /** The client speaks 5.0 (properties, No Local, retain handling, shared subscriptions). */
  readonly v5: boolean;
  /** Retained messages are kept (there is a retained store): a PUBLISH's retain flag is honoured. */
  readonly retains: boolean;
  /** QoS 2 packet ids received and not yet released (PUBREL): a resent PUBLISH with one is not published again. */
  readonly received: Set<number>;
  /** The messages sent to the client and not acknowledged yet (its PUBACK, PUBREC, PUBCOMP complete them). */
  readonly flights: Flights;
  /** 5.0: the client's QoS 1/2 PUBLISHes not answered yet, against the broker's Receive Maximum (3.1.1 has none). */
  readonly quota: InboundQuota | undefined;
  /** 5.0: the topic aliases the client set on its PUBLISHes (alias → topic), this connection's alone; made at the first. */
  topicAliases: Map<number, string> | undefined;
  /** A request the engine will answer: the numeric frame id its answer carries. */
  expect(p: Pending): number;
  /** Queues an answer the broker gives itself, behind what is already queued. */
  answer(p: Pending): undefined;
  /** How long the session outlives the connection: a 5.0 DISCONNECT may change it. */
  readonly expiry: SessionExpiry;
  /** The client ended with DISCONNECT; `keepsWill`: a 5.0 reason other than 0x00 (0x04, or an error), its will still published. */
  disconnect(keepsWill: boolean): void;
}

/**
 * A QoS 1/2 PUBLISH, a SUBSCRIBE and an UNSUBSCRIBE carry a non-zero packet id [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1]):
 * one with 0 is a protocol error (5.0: DISCONNECT 0x82), not a message answered with PUBACK 0.
 */
const ZERO_ID = 'packet id 0 (a non-zero one is required)';

/** A client past the broker's Receive Maximum (CONNACK), which it must not pass [MQTT-3.3.4-7]: DISCONNECT 0x93 (§3.3.4). */
const overQuota = (max: number) => `${RECEIVE_MAXIMUM_EXCEEDED}: more than ${max} QoS 1 and 2 PUBLISHes unanswered`;

/** One packet after CONNECT; returns a protocol violation to close with, or undefined. */
export function inboundPacket(packet: Packet, bytes: number, session: InboundSession): string | undefined {
  const reader = session.reader;
  const v5 = session.v5;
  switch (packet.cmd) {
    case 'publish': {
      const alias = packet.properties?.topicAlias;
      if (alias !== undefined) {
        // Up to the maximum CONNACK gave (3.3.2.3.4): 0 or more is a topic alias invalid (DISCONNECT 0x94) [MQTT-3.3.2-8, -9].
        if (alias === 0 || alias > CLIENT_ALIASES_MAX) return `a topic alias of ${alias} (the broker takes 1 to ${CLIENT_ALIASES_MAX})`;
        if (packet.topic.length > 0) {
          // A topic longer than any the broker takes is not kept (the publish is refused as it is): memory stays bounded.
          if (packet.topic.length <= TOPIC_LIMITS.maxLength) (session.topicAliases ??= new Map()).set(alias, packet.topic);
        } else {
          const topic = session.topicAliases?.get(alias);
          if (topic === undefined) return `a PUBLISH with an empty topic name and topic alias ${alias}, which names no topic yet`;
          packet.topic = topic;
        }
      }
      // Subscription identifiers go from the server to a client only [MQTT-3.3.4-6]: a protocol error (5.0: 0x82).
      if (packet.properties?.subscriptionIdentifier !== undefined) return 'a PUBLISH from a client with a subscription identifier';
      // The DUP flag MUST be 0 on QoS 0 [MQTT-3.3.1-2]; a zero-length topic without a topic alias is a protocol error (5.0, 3.3.2.1).
      if (packet.qos === 0 && packet.dup) return 'malformed packet: DUP set on a QoS 0 PUBLISH';
      if (packet.topic.length === 0) return 'a PUBLISH with an empty topic name and no topic alias';
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      const data = dataOfPayload(payload, v5 ? packet.properties : undefined);
      // Kept as the topic's retained message once the engine took the publish (grants, limits).
      const retain = packet.retain && session.retains ? { topic: packet.topic, payload, qos: packet.qos, properties: v5 ? packet.properties : undefined } : undefined;
      // The flag travels with the message too: a 5.0 subscription with Retain As Published forwards it as published.
      const publish = (frame: unknown) => (retain ? reader.parsedRetained(frame, bytes) : reader.parsed(frame, bytes));
      if (packet.qos === 0) {
        publish(retain ? { op: 'pub', topic: packet.topic, data, qos: 0, id: session.expect({ kind: 'pub0', retain }) } : { op: 'pub', topic: packet.topic, data, qos: 0 });
        return undefined;
      }
      const pid = packet.messageId!;
      if (pid === 0) return ZERO_ID;
      // A QoS 2 PUBLISH sent again before PUBREL is the same exchange: counted once.
      const fresh = packet.qos === 1 || !session.received.has(pid);
      if (fresh && session.quota && !session.quota.take(packet.qos, pid)) return overQuota(session.quota.max);
      if (packet.qos === 1) {
        publish({ op: 'pub', topic: packet.topic, data, qos: 1, id: session.expect({ kind: 'puback', pid, retain }) });
        return undefined;
      }
      // QoS 2: published once; a resend before PUBREL is answered again without publishing again.
      if (session.received.has(pid)) return session.answer({ kind: 'pubrec', pid });
      session.received.add(pid);
      publish({ op: 'pub', topic: packet.topic, data, id: session.expect({ kind: 'pubrec', pid, retain }) });
      return undefined;
    }
    case 'pubrel': {
      // 5.0: a PUBREL for an id with no QoS 2 publish received is answered PUBCOMP 0x92, packet identifier not found (3.7.2.1).
      const known = session.received.delete(packet.messageId!);
      session.quota?.released(packet.messageId!);
      return session.answer({ kind: 'pubcomp', pid: packet.messageId!, reasonCode: known ? undefined : PACKET_ID_NOT_FOUND });
    }
    case 'puback':
      session.flights.completed(packet.messageId!);
      return undefined;
    case 'pubrec': {
      // 5.0: a PUBREC of 0x80 or more is the client refusing the message: its exchange ends there, no PUBREL, and its
      // packet id is free again [MQTT-4.3.3-4]; kept in flight, it was sent PUBREL again on every resume.
      if (v5 && (packet.reasonCode ?? 0) >= 0x80) return void session.flights.completed(packet.messageId!);
      const flight = session.flights.inflight.get(packet.messageId!);
      if (flight) flight.released = true;
      // 5.0: a PUBREC for an id with no message in flight is answered PUBREL 0x92, packet identifier not found (3.6.2.1).
      return session.answer({ kind: 'pubrel', pid: packet.messageId!, reasonCode: flight ? undefined : PACKET_ID_NOT_FOUND });
    }
    case 'pubcomp':
      session.flights.completed(packet.messageId!);
      return undefined;
    case 'subscribe': {
      const subs = packet.subscriptions;
      if (subs.length === 0) return 'SUBSCRIBE without topic filters';
      if (packet.messageId === 0) return ZERO_ID;
      // While the resume resends, served once the filters are resumed (a live subscription before would let new
      // messages overtake the resends, and move positions past what came while away); counted now, as they come.
      const later = session.flights.resuming;
      const group: AckGroup = { pid: packet.messageId!, codes: new Array<number>(subs.length).fill(0), left: subs.length };
      // 5.0: one Subscription Identifier at most, 1 to 268,435,455 (the codec reads no larger one), stored with each
      // of the packet's filters (§3.8.2.1.2); 0, or more than one, is a protocol error.
      const subscriptionId = v5 ? packet.properties?.subscriptionIdentifier : undefined;
      if (Array.isArray(subscriptionId)) return 'a SUBSCRIBE with more than one subscription identifier';
      if (subscriptionId === 0) return 'a SUBSCRIBE with subscription identifier 0';
      subs.forEach((s, index) => {
        const qos = Math.min(Math.max(s.qos, 0), 2) as QoS;
        const unsupported = v5 && s.topic.startsWith('$share/') ? SHARED_NOT_SUPPORTED : undefined;
        const pending = { kind: 'sub' as const, group, index, filter: s.topic, qos, noLocal: v5 && s.nl === true, retainAsPublished: v5 && s.rap === true, subscriptionId, retainHandling: v5 ? (s.rh ?? 0) : 0, unsupported };
        // A shared subscription (not available, CONNACK says either) is refused 0x9E in its turn: a ping stands in for
        // a refused filter, counted against the rate like any filter, so the SUBACK keeps its order.
        reader.parsed(unsupported !== undefined ? { op: 'ping', id: session.expect(pending) } : { op: 'sub', topic: s.topic, id: session.expect(pending) }, index === 0 ? bytes : 0, later);
      });
      return undefined;
    }
    case 'unsubscribe': {
      const list = packet.unsubscriptions;
      if (list.length === 0) return 'UNSUBSCRIBE without topic filters';
      if (packet.messageId === 0) return ZERO_ID;
      const later = session.flights.resuming;
      const group: AckGroup = { pid: packet.messageId!, codes: new Array<number>(list.length).fill(0), left: list.length };
      list.forEach((filter, index) => {
        reader.parsed({ op: 'unsub', topic: filter, id: session.expect({ kind: 'unsub', group, index, filter }) }, index === 0 ? bytes : 0, later);
      });
      return undefined;
    }
    case 'pingreq':
      // PINGREQ has no variable header nor payload: a remaining length other than 0 is a malformed packet (5.0: 0x81).
      if ((packet.length ?? 0) !== 0) return 'malformed packet: a PINGREQ with a remaining length';
      reader.parsed({ op: 'ping', id: session.expect({ kind: 'ping' }) }, bytes);
      return undefined;
    case 'disconnect':
      // 5.0: it may change the session's expiry interval, but not keep a session CONNECT let end with the
      // connection (a protocol error: closed with 0x82, its will published as for any violation).
      if (v5) {
        const problem = session.expiry.disconnect(packet.properties?.sessionExpiryInterval);
        if (problem !== undefined) return problem;
      }
      // Only a normal disconnection (5.0 reason 0x00) discards the will [MQTT-3.14.4-3]: 0x04 ("disconnect with will
      // message") and the error reasons (0x80 and up: the client ends because something went wrong) keep it.
      session.disconnect(v5 && (packet.reasonCode ?? 0) !== 0);
      reader.parsed({ op: 'quit' }, bytes);
      return undefined;
    case 'connect':
      return 'a second CONNECT on one connection';
    case 'auth':
      return 'AUTH (enhanced authentication) is not supported';
    default:
      return `a ${packet.cmd.toUpperCase()} packet from a client`;
  }
}

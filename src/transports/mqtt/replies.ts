// The engine's answers to the requests an MQTT session made on its client's behalf (pending.ts), as the packets that
// answer the client, in the writer's flush: SUBACK / UNSUBACK once every filter of a packet has its answer, PUBACK,
// PUBREC, PUBREL, PUBCOMP and PINGRESP, and the PUBLISH packets the session queued for itself (a subscription's
// retained messages, a resume's resends, the messages that waited for the client's Receive Maximum). An answer also
// moves the session on (the filters it holds, its messages in flight, the retained messages it keeps): what it needs
// of the session comes explicitly, as a ReplySession.
import mqttPacket, { type QoS } from 'mqtt-packet';
import type { ServerFrame } from '../../protocol/frames.js';
import type { Outgoing } from '../../protocol/outgoing.js';
import { pubReason, reasonOfError, SUBACK_FAILURE_V4 } from './codes.js';
import type { Flights } from './flights.js';
import type { InboundQuota, SendQueue, Waiting } from './flow.js';
import { inflightProperties, NOTHING, payloadEncoding, propertiesNow, retainedPacket, retainedProperties, withIds } from './packets.js';
import { settle, type Pending } from './pending.js';
import type { PacketProperties } from './payload.js';
import type { Inflight, Retained } from './store.js';
import type { RetainedReads, RetainedWrites } from './retained-order.js';
import type { FilterOptions } from './filter-options.js';

/** The engine's answer to a request: taken (ack) or refused (error). */
export type Answer = Extract<ServerFrame, { op: 'ack' | 'error' }>;

/** Refusals the engine reports without an id: only a QoS 0 publish (sent without one) can have caused them. */
const PUBLISH_REFUSALS: ReadonlySet<string> = new Set(['bad_topic', 'forbidden', 'too_large', 'bad_frame', 'rate_limited', 'unavailable', 'internal']);

/** Errors that say nothing about the request itself: the broker could not serve it now. */
const TRANSIENT: ReadonlySet<string> = new Set(['unavailable', 'outcome_unknown']);

/**
 * A resent message's 5.0 properties: as first sent, the expiry counting down (at least 1 s: its delivery had begun).
 * From the message itself, or for a payload kept as bytes (a retained message, a session stored in Redis) from the
 * properties and time kept with it.
 */
function resentProperties(flight: Inflight): PacketProperties | undefined {
  const { properties, at } = inflightProperties(flight);
  if (!properties) return undefined;
  const now = propertiesNow({ payload: NOTHING, properties }, at ?? Date.now());
  return now === null ? { ...properties, messageExpiryInterval: 1 } : now;
}

/** What answering needs of the MQTT session the answer is for: the state an answer moves on, and what it does through the connection. */
export interface ReplySession {
  /** The codec's options for the connection's protocol version (4: 3.1.1, 5: 5.0). */
  readonly generateOptions: { protocolVersion: 4 | 5 };
  /** A refusal may say why in a reason string (not when the 5.0 client set Request Problem Information to 0). */
  readonly reasonStrings: boolean;
  /** Granted QoS by filter: the filters the session holds. */
  readonly filters: Map<string, QoS>;
  /** The 5.0 options of its filters (No Local, Retain As Published, Subscription Identifier). */
  readonly filterOptions: FilterOptions;
  /** QoS 2 packet ids received and not yet released (PUBREL): a resent PUBLISH with one is not published again. */
  readonly received: Set<number>;
  /** The messages sent and not acknowledged yet, by packet id. */
  readonly flights: Flights;
  /** Filters whose retained messages are being read, with the live messages of their topics held meanwhile. */
  readonly reads: RetainedReads;
  /** Retained messages being kept: PUBACKs and PUBRECs wait behind them, in order. */
  readonly writes: RetainedWrites;
  /** Whether the session was cut as a slow consumer: nothing more is sent. */
  isCut(): boolean;
  /** The client's QoS 1/2 PUBLISHes not answered yet, against the broker's Receive Maximum (QoS 2: until PUBREL). */
  readonly inboundQuota: InboundQuota;
  /** The messages waiting for the client's Receive Maximum. */
  readonly waiting: SendQueue;
  /** Puts a message to wait behind them (past the queue's bounds: a slow consumer). Nothing to write. */
  wait(w: Waiting): Buffer;
  /** A filter the engine took (`ack`): held at `qos`, and its retained messages sent when `retained`. */
  subscribed(filter: string, qos: QoS, ack: Answer, retained: boolean): void;
  /** `packet`, or nothing when it is larger than the client said it takes (5.0 maximum packet size). */
  fits(packet: Buffer): Buffer;
  /** The session is cut as a slow consumer (once): nothing more is sent. Nothing to write. */
  slowConsumer(): Buffer;
  /** A publish MQTT cannot refuse in band: the connection is closed, saying why. Nothing to write. */
  refused(code: string, message: string): Buffer;
  /** The connection ends after this flush so that its client comes back and tries again; `reason` says why. */
  tryAgainLater(reason: string): void;
}

/** The engine's answer `f` to request id `f.id` of `pending` as the packet answering the client (a QoS 0 publish's refusal, without an id, closes). */
export function replyTo(f: Answer, pending: Map<number, Pending>, session: ReplySession): Buffer {
  const id = f.id;
  const p = typeof id === 'number' ? pending.get(id) : undefined;
  if (p === undefined) {
    if (f.op === 'error' && f.id === undefined && PUBLISH_REFUSALS.has(f.code)) session.refused(f.code, f.message);
    return NOTHING;
  }
  pending.delete(id as number);
  return replyPacket(p, f, session);
}

/** The packet answering the client for request `p`, which the engine answered `f` (nothing, when none goes out now). */
export function replyPacket(p: Pending, f: Answer, session: ReplySession): Buffer {
  const error = f.op === 'error' ? f : undefined;
  const o = session.generateOptions;
  const v5 = o.protocolVersion === 5;
  switch (p.kind) {
    case 'sub':
      if (!error && p.unsupported !== undefined) return settle(p.group, p.index, p.unsupported, 'suback', o) ?? NOTHING;
      if (!error) {
        // Retain handling (5.0): 0 sends the retained messages, 1 only for a new subscription, 2 never.
        const fresh = !session.filters.has(p.filter);
        session.filterOptions.set(p.filter, p);
        session.subscribed(p.filter, p.qos, f, p.retainHandling === 0 || (p.retainHandling === 1 && fresh));
      }
      return settle(p.group, p.index, error ? (v5 ? reasonOfError(error.code) : SUBACK_FAILURE_V4) : p.qos, 'suback', o) ?? NOTHING;
    case 'resub':
      if (!error) session.subscribed(p.filter, p.qos, f, false);
      else if (TRANSIENT.has(error.code)) {
        // The broker could not resume it now (its store did not answer): the session keeps the filter and the
        // connection ends, so the client comes back and resumes again, instead of silently losing a subscription.
        session.filters.set(p.filter, p.qos);
        session.tryAgainLater(`the session's filter '${p.filter}' could not be resumed now: ${error.code}`.slice(0, 120));
      }
      // Otherwise the broker no longer allows the filter (a new token): it is dropped from the session.
      return NOTHING;
    case 'retained': {
      const { message, qos, ids } = p;
      // Cut as a slow consumer (one before it found the window full): nothing more goes out, QoS 0 included.
      if (session.isCut()) return NOTHING;
      // The client's Receive Maximum is reached, or messages wait already: it waits behind them.
      if (session.waiting.mustWait(qos)) return session.wait({ kind: 'retained', message, qos, ids });
      const pid = qos === 0 ? 0 : session.flights.packetId();
      // No packet id free: the client stopped acknowledging; cut as a slow consumer, as for a live message.
      if (pid === undefined) return session.slowConsumer();
      return retainedNow(message, qos, pid, session, ids);
    }
    case 'release':
      return session.waiting.release();
    case 'retainedEnd': {
      // Every live message queued before the retained ones was held when written (the read was still on); those
      // after this one in this flush are too. Once it is over, the read ends and they are queued again, in order.
      const read = p.read;
      queueMicrotask(() => session.reads.end(read));
      return NOTHING;
    }
    case 'resend': {
      const flight = session.flights.inflight.get(p.pid);
      if (!flight) return NOTHING;
      const payload = Buffer.isBuffer(flight.payload) ? flight.payload : (flight.payload as Outgoing).bytesFor(payloadEncoding);
      // The same message again: on 5.0 with its properties (its expiry counting down; delivery had begun) and the
      // Subscription Identifiers it went out with.
      const resent = v5 ? resentProperties(flight) : undefined;
      const properties = v5 ? withIds(resent, flight.ids) : undefined;
      const packet = session.fits(mqttPacket.generate({ cmd: 'publish', topic: flight.topic, payload, qos: flight.qos, messageId: p.pid, dup: true, retain: flight.retain, ...(properties && { properties }) }, o));
      // Larger than this connection takes: dropped as if delivered [MQTT-3.1.2-25] (not from inside the flush).
      if (packet.length === 0) queueMicrotask(() => session.flights.completed(p.pid));
      return packet;
    }
    case 'pub0':
      if (error) return session.refused(error.code, error.message);
      keepRetained(p, f, session.writes);
      return NOTHING;
    case 'unsub':
      if (!error) {
        session.filters.delete(p.filter);
        session.filterOptions.delete(p.filter);
      }
      return settle(p.group, p.index, error ? reasonOfError(error.code) : 0, 'unsuback', o) ?? NOTHING;
    case 'puback':
    case 'pubrec': {
      // A refused QoS 2 publish was not received: a resend of it (DUP, after a reconnect) is published then.
      if (error && p.kind === 'pubrec') {
        session.received.delete(p.pid);
        session.inboundQuota.released(p.pid);
      }
      // 3.1.1 cannot refuse a publish: the spec's other choice is closing the connection.
      if (error && !v5) return session.refused(error.code, error.message);
      const packet = error ? refusal(p.kind, p.pid, error, session) : mqttPacket.generate({ cmd: p.kind, messageId: p.pid }, o);
      if (!error && p.retain) session.writes.after(keepRetained(p, f, session.writes), packet);
      else if (session.writes.waiting) session.writes.after(undefined, packet);
      else return packet;
      return NOTHING;
    }
    case 'ready':
      return p.packet;
    case 'pubcomp':
    case 'pubrel':
      return mqttPacket.generate({ cmd: p.kind, messageId: p.pid, ...(v5 && p.reasonCode !== undefined && { reasonCode: p.reasonCode }) }, o);
    case 'ping':
      return mqttPacket.generate({ cmd: 'pingresp' }, o);
  }
}

/**
 * Retained message `message`'s PUBLISH at `qos` with packet id `pid` (0 for QoS 0), taken in flight; nothing when its
 * message expiry passed or it is larger than the client takes (5.0 maximum packet size: not sent, as if it had been
 * [MQTT-3.1.2-25]).
 */
export function retainedNow(message: Retained, qos: QoS, pid: number, session: ReplySession, ids?: number[]): Buffer {
  const properties = retainedProperties(message);
  if (properties === null) return NOTHING;
  const packet = session.fits(retainedPacket(message, qos, qos === 0 ? undefined : pid, withIds(properties, ids), session.generateOptions));
  if (packet.length === 0) return NOTHING;
  // Its properties as kept and when (not as sent now): a resend counts the expiry down from there again.
  if (qos !== 0) session.flights.inflight.set(pid, { qos, released: false, payload: message.payload, topic: message.topic, retain: true, ids, properties: message.properties, at: message.at ?? Date.now() });
  return packet;
}

/**
 * A 5.0 PUBACK / PUBREC refusing a publish: with its reason string, unless the client set Request Problem Information
 * to 0 [MQTT-3.1.2-29] or the string would take it past the client's maximum packet size [MQTT-3.4.2-2] [MQTT-3.5.2-2].
 */
function refusal(cmd: 'puback' | 'pubrec', pid: number, error: Extract<Answer, { op: 'error' }>, session: ReplySession): Buffer {
  const bare = { cmd, messageId: pid, reasonCode: pubReason(error.code) };
  const o = session.generateOptions;
  const full = session.reasonStrings ? session.fits(mqttPacket.generate({ ...bare, properties: { reasonString: error.message.slice(0, 200) } }, o)) : NOTHING;
  return full.length > 0 ? full : mqttPacket.generate(bare, o);
}

/** Starts keeping the retained message of a publish the engine took (answer `f`), once: its write, or undefined (none). */
export function keepRetained(p: Extract<Pending, { kind: 'pub0' | 'puback' | 'pubrec' }>, f: Answer, writes: RetainedWrites): Promise<void> | undefined {
  if (!p.retain) return undefined;
  return (p.kept ??= writes.start(writes.keep(p.retain, f)));
}

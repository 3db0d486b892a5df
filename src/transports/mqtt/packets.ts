// The PUBLISH side of an MQTT connection's outbound bytes, shared across subscribers where it can be: a message's
// delivery (payload, 5.0 properties) worked out once per message, its QoS 0 packet once per protocol version, and
// the properties it goes out with now (a message expiry counts down); a retained message's packet; the CONNACK that
// accepts a connection and the packet that ends one.
import mqttPacket, { type QoS } from 'mqtt-packet';
import { CLOSE } from '../../protocol/errors.js';
import type { Outgoing, Encoding } from '../../protocol/outgoing.js';
import { disconnectReason } from './codes.js';
import { RECEIVE_MAXIMUM_DEFAULT } from './flow.js';
import { deliveryOfData, type Delivery, type PacketProperties } from './payload.js';
import type { Inflight, Retained } from './store.js';
import { PLAIN, type Marks } from './filter-options.js';
import { CLIENT_ALIASES_MAX } from './aliases.js';

/** No bytes: a frame with nothing to write to the client (no MQTT form, not sent, or answered later). */
export const NOTHING = Buffer.alloc(0);

/** A message's MQTT delivery (payload, 5.0 properties), worked out once per message and shared by its subscribers. */
const deliveries = new WeakMap<Outgoing, Delivery>();
export function deliveryOf(out: Outgoing): Delivery {
  let d = deliveries.get(out);
  if (!d) deliveries.set(out, (d = deliveryOfData(out.dataJson() ?? JSON.stringify((out.frame as { data?: unknown }).data))));
  return d;
}

/** The payload of a message, shared by every MQTT subscriber of one publish. */
export const payloadEncoding: Encoding = (out) => deliveryOf(out).payload;

/** The MQTT payload of a message (a stored session keeps its unacknowledged messages as bytes). */
export function payloadOf(out: Outgoing): Buffer {
  return out.bytesFor(payloadEncoding);
}

/** QoS 0 PUBLISH packets of messages without an expiry depend on the message alone: shared by every subscriber of one version. */
export const qos0Encodings: Record<4 | 5, Encoding> = {
  4: (out) => encodePublishQos0((out.frame as { topic: string }).topic, deliveryOf(out).payload),
  5: (out) => {
    const d = deliveryOf(out);
    return mqttPacket.generate({ cmd: 'publish', topic: (out.frame as { topic: string }).topic, payload: d.payload, qos: 0, dup: false, retain: false, ...(d.properties && { properties: d.properties }) }, { protocolVersion: 5 });
  },
};

/** A 3.1.1 QoS 0 PUBLISH written directly: the fan-out's common packet, without the codec's general path. */
export function encodePublishQos0(topic: string, payload: Buffer): Buffer {
  const topicBytes = Buffer.byteLength(topic);
  const remaining = 2 + topicBytes + payload.length;
  let lengthBytes = 1;
  for (let n = remaining; n >= 128; n = Math.floor(n / 128)) lengthBytes++;
  const packet = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  packet[0] = 0x30;
  let at = 1;
  let n = remaining;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    packet[at++] = byte;
  } while (n > 0);
  packet.writeUInt16BE(topicBytes, at);
  packet.write(topic, at + 2, 'utf8');
  payload.copy(packet, at + 2 + topicBytes);
  return packet;
}

/**
 * An unacknowledged message's 5.0 properties as published or kept, and when (ms since 1970): from the message, or,
 * for a payload kept as bytes (a retained message, a session stored in Redis), kept beside it. Its resend and the
 * session's encoding in Redis both read them here.
 */
export function inflightProperties(flight: Inflight): { properties: PacketProperties | undefined; at: number | undefined } {
  if (Buffer.isBuffer(flight.payload)) return { properties: flight.properties, at: flight.at };
  return { properties: deliveryOf(flight.payload).properties, at: (flight.payload.frame as { ts?: number }).ts };
}

/**
 * The properties a message is delivered with now: its expiry counts down from when it was published; null: expired.
 * An interval of 0 is a lifetime of no time: the onward delivery that starts as it is published (subscribers online
 * then, within its second) goes out with 0; one that would start later (a retained copy, a resumed session) does not.
 */
export function propertiesNow(d: Delivery, ts: number): PacketProperties | undefined | null {
  const interval = d.properties?.messageExpiryInterval;
  if (interval === undefined) return d.properties;
  const left = interval - Math.floor((Date.now() - ts) / 1000);
  return left < 0 || (left === 0 && interval > 0) ? null : { ...d.properties, messageExpiryInterval: left };
}

/** 5.0 properties as a PUBLISH goes out with them: a message's, and the Subscription Identifiers of the filters it matched. */
export type SentProperties = PacketProperties & { subscriptionIdentifier?: number[] };

/** `properties` with the Subscription Identifiers `ids` (each its own property in the packet); as they are without any. */
export function withIds(properties: PacketProperties | undefined, ids: number[] | undefined): SentProperties | undefined {
  return ids === undefined ? properties : { ...properties, subscriptionIdentifier: ids };
}

/**
 * QoS 0 PUBLISH packets of a message with Subscription Identifiers (no expiry: they depend on the message and the
 * identifiers alone), by retain flag and identifiers: shared by its subscribers whose filters carry the same ones
 * (many devices subscribing with the same identifier). Only 5.0 subscribers have identifiers.
 */
const qos0WithIds = new WeakMap<Outgoing, Map<string, Buffer>>();
function qos0Identified(out: Outgoing, topic: string, delivery: Delivery, marks: Marks & { ids: number[] }): Buffer {
  let packets = qos0WithIds.get(out);
  if (!packets) qos0WithIds.set(out, (packets = new Map()));
  const key = `${marks.retain ? 'r' : ''}${marks.ids.join(',')}`;
  let packet = packets.get(key);
  if (!packet) {
    const properties = withIds(delivery.properties, marks.ids);
    packets.set(key, (packet = mqttPacket.generate({ cmd: 'publish', topic, payload: delivery.payload, qos: 0, dup: false, retain: marks.retain, properties }, { protocolVersion: 5 })));
  }
  return packet;
}

/**
 * The shared QoS 0 packets with the retain flag set (5.0 Retain As Published): the same bytes but the flag, bit 0 of
 * the first byte, derived once per message from the packet without it.
 */
const qos0RetainEncodings: Record<4 | 5, Encoding> = {
  4: (out) => withRetainFlag(out.bytesFor(qos0Encodings[4])),
  5: (out) => withRetainFlag(out.bytesFor(qos0Encodings[5])),
};

function withRetainFlag(packet: Buffer): Buffer {
  const copy = Buffer.from(packet);
  copy[0]! |= 0x01;
  return copy;
}

/**
 * A live message's PUBLISH at `qos`, with packet id `pid` above QoS 0 (`options`: the connection's protocol version)
 * and `marks` (its retain flag, its Subscription Identifiers); null when its message expiry passed. A QoS 0 message
 * without an expiry is a packet every subscriber shares (one with the retain flag, one without; one per set of
 * identifiers).
 */
export function livePacket(out: Outgoing, topic: string, qos: QoS, pid: number, options: { protocolVersion: 4 | 5 }, marks: Marks = PLAIN): Buffer | null {
  const delivery = deliveryOf(out);
  const now = propertiesNow(delivery, (out.frame as { ts: number }).ts);
  if (now === null) return null;
  const v5 = options.protocolVersion === 5;
  if (qos === 0 && now === delivery.properties) {
    if (v5 && marks.ids !== undefined) return qos0Identified(out, topic, delivery, marks as Marks & { ids: number[] });
    return out.bytesFor((marks.retain ? qos0RetainEncodings : qos0Encodings)[options.protocolVersion]);
  }
  const properties = v5 ? withIds(now, marks.ids) : undefined;
  return mqttPacket.generate({ cmd: 'publish', topic, payload: delivery.payload, qos, ...(qos > 0 && { messageId: pid }), dup: false, retain: marks.retain, ...(properties && { properties }) }, options);
}

/**
 * The CONNACK accepting a connection. 5.0 says what the broker does not do (no shared subscriptions), how many topic
 * aliases a client may set (CLIENT_ALIASES_MAX), and that it takes subscription identifiers, its Receive Maximum, the
 * client id it assigned, and the largest packet it takes: a packet over it closes the connection (0x95), said here so
 * a compliant client never sends one (3.2.2.3.6); and, under --mqtt-max-keepalive, the keepalive the client must use
 * (Server Keep Alive, 3.2.2.3.14).
 */
export function connackPacket(version: 3 | 4 | 5, sessionPresent: boolean, retainAvailable: boolean, assigned: string | undefined, maxPacket: number | undefined, receiveMaximum = RECEIVE_MAXIMUM_DEFAULT, serverKeepAlive?: number): Buffer {
  if (version !== 5) return mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent });
  const properties: Record<string, unknown> = { retainAvailable, sharedSubscriptionAvailable: false, subscriptionIdentifiersAvailable: true, topicAliasMaximum: CLIENT_ALIASES_MAX };
  // Absent, it is 65535 (3.2.2.3.3).
  if (receiveMaximum < RECEIVE_MAXIMUM_DEFAULT) properties.receiveMaximum = receiveMaximum;
  if (assigned !== undefined) properties.assignedClientIdentifier = assigned;
  if (maxPacket !== undefined) properties.maximumPacketSize = maxPacket;
  if (serverKeepAlive !== undefined) properties.serverKeepAlive = serverKeepAlive;
  return mqttPacket.generate({ cmd: 'connack', reasonCode: 0, sessionPresent, properties }, { protocolVersion: 5 });
}

/**
 * The properties a retained message goes out with now (its expiry counts from when it was kept); null: expired. An
 * expiry of 0 is always past for a retained copy: its subscriber came after it was published, however soon (within
 * its second propertiesNow would still give 0: a subscriber that came 50 ms after it got it).
 */
export function retainedProperties(message: Retained): PacketProperties | undefined | null {
  if (message.properties?.messageExpiryInterval === 0) return null;
  return message.properties ? propertiesNow({ payload: message.payload, properties: message.properties }, message.at ?? Date.now()) : undefined;
}

/** A retained message's PUBLISH (retain flag set) at `qos`, with packet id `pid` above QoS 0 and `properties` on 5.0. */
export function retainedPacket(message: Retained, qos: QoS, pid: number | undefined, properties: SentProperties | undefined, options: { protocolVersion: 4 | 5 }): Buffer {
  return mqttPacket.generate(
    { cmd: 'publish', topic: message.topic, payload: message.payload, qos, dup: false, retain: true, ...(pid === undefined ? {} : { messageId: pid }), ...(options.protocolVersion === 5 && properties ? { properties } : {}) },
    options,
  );
}

/**
 * The bytes that end a connection: a refused CONNACK before one was sent (`connacked` false), a 5.0 DISCONNECT with
 * the reason after; none for 3.1.1 or a normal close (the stream just ends). `maxPacket`: the client's maximum packet
 * size (5.0), which the DISCONNECT's reason string is dropped rather than exceed [MQTT-3.14.2-3].
 */
export function closingPacket(version: 4 | 5, connacked: boolean, code: number, reason: string, maxPacket?: number): Buffer | undefined {
  const v5 = version === 5;
  if (!connacked) {
    const refusal = code === CLOSE.tryAgainLater || code === CLOSE.goingAway ? (v5 ? 0x88 : 3) : v5 ? 0x80 : 3;
    return mqttPacket.generate(v5 ? { cmd: 'connack', reasonCode: refusal, sessionPresent: false } : { cmd: 'connack', returnCode: refusal, sessionPresent: false }, { protocolVersion: version });
  }
  if (!v5 || code === CLOSE.normal) return undefined;
  const reasonCode = disconnectReason(code, reason);
  const full = mqttPacket.generate({ cmd: 'disconnect', reasonCode, properties: { reasonString: reason.slice(0, 200) } }, { protocolVersion: version });
  return maxPacket !== undefined && full.length > maxPacket ? mqttPacket.generate({ cmd: 'disconnect', reasonCode }, { protocolVersion: version }) : full;
}

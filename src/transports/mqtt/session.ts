// MqttSession: one MQTT connection's protocol state between its socket and its Link. Inbound packets become the
// broker's own requests (sub, unsub, pub, ping, quit) through the connection's FrameReader, so every limit and
// grant applies as on any transport; outbound frames (hello, msg, ack, error, pong) become MQTT packets here,
// in the writer's flush, with the packet ids and QoS exchanges that MQTT adds.
import mqttPacket, { type IConnectPacket, type Packet, type QoS } from 'mqtt-packet';
import type { Link } from '../../actors/link.js';
import type { FrameReader } from '../../actors/reader.js';
import type { Outgoing, Encoding } from '../../protocol/outgoing.js';
import type { ServerFrame } from '../../protocol/frames.js';
import { CLOSE } from '../../protocol/errors.js';
import { isWildcard } from '../../protocol/topic.js';
import { dataOfPayload, deliveryOfData, type Delivery, type PacketProperties } from './payload.js';
import { disconnectReason, pubReason, reasonOfError, SUBACK_FAILURE_V4 } from './codes.js';
import { mqttMatches } from './match.js';
import { POSITIONS_MAX, type Inflight, type Position, type Retained, type RetainedStore, type StoredSession } from './store.js';

export type MqttVersion = 3 | 4 | 5;

/** A request sent to the engine on the client's behalf, by the numeric frame id its answer will carry. */
type Pending =
  | { kind: 'sub'; group: AckGroup; index: number; filter: string; qos: QoS; noLocal: boolean; retainHandling: number }
  | { kind: 'unsub'; group: AckGroup; index: number; filter: string }
  /** A QoS 0 publish with the retain flag: answered by nothing, but kept as retained once the engine took it. */
  | { kind: 'pub0'; retain: Retained }
  | { kind: 'puback'; pid: number; retain?: Retained | undefined }
  | { kind: 'pubrec'; pid: number; retain?: Retained | undefined }
  /** A persistent session's filter subscribed again on reconnect, resuming from its positions. */
  | { kind: 'resub'; filter: string; qos: QoS }
  /** A retained message for a new subscription, or an unacknowledged one sent again after a reconnect. */
  | { kind: 'retained'; message: Retained; qos: QoS }
  /** Behind a subscription's retained messages: the live messages held meanwhile go out now. */
  | { kind: 'retainedEnd'; read: RetainedRead }
  | { kind: 'resend'; pid: number }
  /** Answers the broker gives without asking the engine, sent through the mailbox to keep their order. */
  | { kind: 'pubcomp'; pid: number }
  | { kind: 'pubrel'; pid: number }
  | { kind: 'ping' }
  /** A PUBACK or PUBREC held until the retained message of its publish was kept. */
  | { kind: 'ready'; packet: Buffer };

/** A filter's retained messages being read, and the live messages of its topics held meanwhile (in their order). */
interface RetainedRead {
  filter: string;
  held: Outgoing[];
}

/** SUBACK / UNSUBACK: one answer for all the filters of one packet. */
interface AckGroup {
  pid: number;
  codes: number[];
  left: number;
}

/** Errors that say nothing about the request itself: the broker could not serve it now. */
const TRANSIENT: ReadonlySet<string> = new Set(['unavailable', 'outcome_unknown']);

/** Refusals the engine reports without an id: only a QoS 0 publish (sent without one) can have caused them. */
const PUBLISH_REFUSALS: ReadonlySet<string> = new Set(['bad_topic', 'forbidden', 'too_large', 'bad_frame', 'rate_limited', 'unavailable', 'internal']);

/** A message's MQTT delivery (payload, 5.0 properties), worked out once per message and shared by its subscribers. */
const deliveries = new WeakMap<Outgoing, Delivery>();
function deliveryOf(out: Outgoing): Delivery {
  let d = deliveries.get(out);
  if (!d) deliveries.set(out, (d = deliveryOfData(out.dataJson() ?? JSON.stringify((out.frame as { data?: unknown }).data))));
  return d;
}

/** The payload of a message, shared by every MQTT subscriber of one publish. */
const payloadEncoding: Encoding = (out) => deliveryOf(out).payload;

/** The MQTT payload of a message (a stored session keeps its unacknowledged messages as bytes). */
export function payloadOf(out: Outgoing): Buffer {
  return out.bytesFor(payloadEncoding);
}

/** QoS 0 PUBLISH packets of messages without an expiry depend on the message alone: shared by every subscriber of one version. */
const qos0Encodings: Record<4 | 5, Encoding> = {
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

/** The properties a message is delivered with now: its expiry counts down from when it was published; null: expired. */
function propertiesNow(d: Delivery, ts: number): PacketProperties | undefined | null {
  const interval = d.properties?.messageExpiryInterval;
  if (interval === undefined) return d.properties;
  const left = interval - Math.floor((Date.now() - ts) / 1000);
  return left <= 0 ? null : { ...d.properties, messageExpiryInterval: left };
}

const NOTHING = Buffer.alloc(0);
const MAX_PACKET_ID = 65_535;

export interface SessionOptions {
  version: MqttVersion;
  clientId: string;
  /** The client sent an empty client id and the broker assigned one (v5 says which in CONNACK). */
  assignedId: boolean;
  /** The session outlives the connection (3.1.1 clean session 0, 5.0 session expiry > 0). */
  persistent: boolean;
  /** What it resumes: the session kept from its last connection (CONNACK then says session present). */
  stored?: StoredSession | undefined;
  /** Unacknowledged QoS 1/2 messages at most (beyond: a slow consumer). */
  maxInflight: number;
  retained?: RetainedStore | undefined;
  /** The largest packet the client takes (5.0 CONNECT); a message over it is not sent to it. */
  maxPacket?: number | undefined;
}

/** Retained messages one SUBSCRIBE filter may bring at most (each goes through the mailbox, charged to it). */
const RETAINED_PER_FILTER = 1000;
/** Live messages held behind one filter's retained read at most (beyond: delivered at once, retained may follow). */
const RETAINED_HOLD_MAX = 1000;

export class MqttSession {
  private link: Link | undefined;
  private reader: FrameReader | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextRequestId = 1;
  /** Granted QoS by filter: the QoS a message is delivered at is the highest of the filters it matches. */
  readonly filters: Map<string, QoS>;
  private readonly inflight: Map<number, Inflight>;
  private nextPacketId: number;
  /** Persistent sessions: where it got to per topic, and the engine life those positions are from. */
  private readonly positions: Map<string, Position> | undefined;
  private life: string | undefined;
  /** 5.0 filters subscribed with No Local: the client's own messages do not come back through them. */
  private readonly noLocal = new Set<string>();
  /**
   * Filters whose retained messages are being read (a shared store answers later than the SUBACK), with the live
   * messages of their topics held meanwhile, so a retained message never arrives after a newer live one.
   */
  private readonly retainedReads: RetainedRead[] = [];
  /** Retained messages being kept: PUBACKs and PUBRECs wait behind them, in order. */
  private held: Promise<void> | undefined;
  /** QoS 2 packet ids received and not yet released (PUBREL): a resent PUBLISH with one is not published again. */
  private readonly received = new Set<number>();
  /** CONNACK went out: a close then is a DISCONNECT (v5) or the end of the stream, not a refused CONNACK. */
  connacked = false;
  /** The client ended with DISCONNECT (reason 0): its will is not published. */
  disconnected = false;
  private readonly generateOptions: { protocolVersion: 4 | 5 };

  constructor(readonly options: SessionOptions) {
    this.generateOptions = { protocolVersion: options.version === 5 ? 5 : 4 };
    const stored = options.stored;
    this.filters = stored?.filters ?? new Map();
    this.inflight = stored?.inflight ?? new Map();
    this.nextPacketId = stored?.nextPacketId ?? 1;
    // A resumed session resumes from its positions even when it will not be kept afterwards (5.0 expiry 0 this time).
    this.positions = stored?.positions ?? (options.persistent ? new Map() : undefined);
    this.life = stored?.life;
  }

  /** After CONNACK: the unacknowledged messages again (DUP), then every filter resumed from where it got to. */
  resume(): void {
    const stored = this.options.stored;
    if (!stored) return;
    for (const [pid, flight] of this.inflight) {
      if (flight.released) this.answer({ kind: 'pubrel', pid });
      else this.answer({ kind: 'resend', pid });
    }
    for (const [filter, qos] of this.filters) {
      this.filters.delete(filter); // held again once the engine acknowledges it
      this.reader!.parsed({ op: 'sub', topic: filter, ...this.positionsFor(filter), id: this.expect({ kind: 'resub', filter, qos }) }, 0);
    }
  }

  /** The `since` / `epoch` / `life` of a resuming sub of `filter`: the positions of the topics it matches. */
  private positionsFor(filter: string): Record<string, unknown> {
    const life = this.life === undefined ? {} : { life: this.life };
    if (!isWildcard(filter)) {
      const p = this.positions?.get(filter);
      return p ? { since: p.seq, epoch: p.epoch, ...life } : { since: 0, ...life };
    }
    const since: Record<string, number> = Object.create(null) as Record<string, number>;
    const epoch: Record<string, string> = Object.create(null) as Record<string, string>;
    let n = 0;
    for (const [topic, p] of this.positions ?? []) {
      if (n >= POSITIONS_MAX) break;
      if (!mqttMatches(filter, topic)) continue;
      since[topic] = p.seq;
      epoch[topic] = p.epoch;
      n++;
    }
    return n === 0 ? { since: 0, ...life } : { since, epoch, ...life };
  }

  /**
   * What is kept when the connection ends, or undefined for a clean session. `current`: the positions of the topics
   * its filters match now, so that what is published while it is away is what it resumes.
   */
  keep(current: (filter: string) => Iterable<[string, Position]>, expiresAt: number): StoredSession | undefined {
    if (!this.options.persistent || !this.positions) return undefined;
    const filters = this.sessionFilters();
    for (const filter of filters.keys()) {
      for (const [topic, p] of current(filter)) if (!this.positions.has(topic)) this.remember(topic, p);
    }
    return { filters, positions: this.positions, life: this.life, inflight: this.inflight, nextPacketId: this.nextPacketId, expiresAt };
  }

  /** The session's filters: those held, and those of a resume the engine has not acknowledged yet (still the session's). */
  sessionFilters(): Map<string, QoS> {
    const filters = new Map(this.filters);
    for (const p of this.pending.values()) if (p.kind === 'resub' && !filters.has(p.filter)) filters.set(p.filter, p.qos);
    return filters;
  }

  private remember(topic: string, p: Position): void {
    const positions = this.positions!;
    positions.delete(topic); // most recent last: the oldest goes first when full
    if (positions.size >= POSITIONS_MAX) positions.delete(positions.keys().next().value!);
    positions.set(topic, p);
  }

  get isV5(): boolean {
    return this.options.version === 5;
  }

  attach(link: Link, reader: FrameReader): void {
    this.link = link;
    this.reader = reader;
  }

  // ---- inbound ----

  /** One packet after CONNECT; returns a protocol violation to close with, or undefined. */
  inbound(packet: Packet, bytes: number): string | undefined {
    const reader = this.reader!;
    switch (packet.cmd) {
      case 'publish': {
        if (packet.properties?.topicAlias !== undefined) return 'a topic alias (the broker allows none: topic alias maximum 0)';
        const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
        const data = dataOfPayload(payload, this.isV5 ? packet.properties : undefined);
        // Kept as the topic's retained message once the engine took the publish (grants, limits).
        const retain = packet.retain && this.options.retained ? { topic: packet.topic, payload, qos: packet.qos, properties: this.isV5 ? packet.properties : undefined } : undefined;
        if (packet.qos === 0) {
          reader.parsed(retain ? { op: 'pub', topic: packet.topic, data, qos: 0, id: this.expect({ kind: 'pub0', retain }) } : { op: 'pub', topic: packet.topic, data, qos: 0 }, bytes);
          return undefined;
        }
        const pid = packet.messageId!;
        if (packet.qos === 1) {
          reader.parsed({ op: 'pub', topic: packet.topic, data, qos: 1, id: this.expect({ kind: 'puback', pid, retain }) }, bytes);
          return undefined;
        }
        // QoS 2: published once; a resend before PUBREL is answered again without publishing again.
        if (this.received.has(pid)) return this.answer({ kind: 'pubrec', pid });
        this.received.add(pid);
        reader.parsed({ op: 'pub', topic: packet.topic, data, id: this.expect({ kind: 'pubrec', pid, retain }) }, bytes);
        return undefined;
      }
      case 'pubrel':
        this.received.delete(packet.messageId!);
        return this.answer({ kind: 'pubcomp', pid: packet.messageId! });
      case 'puback':
        this.inflight.delete(packet.messageId!);
        return undefined;
      case 'pubrec': {
        const flight = this.inflight.get(packet.messageId!);
        if (flight) flight.released = true;
        return this.answer({ kind: 'pubrel', pid: packet.messageId! });
      }
      case 'pubcomp':
        this.inflight.delete(packet.messageId!);
        return undefined;
      case 'subscribe': {
        const subs = packet.subscriptions;
        if (subs.length === 0) return 'SUBSCRIBE without topic filters';
        const group: AckGroup = { pid: packet.messageId!, codes: new Array<number>(subs.length).fill(0), left: subs.length };
        subs.forEach((s, index) => {
          const qos = Math.min(Math.max(s.qos, 0), 2) as QoS;
          const pending = { kind: 'sub' as const, group, index, filter: s.topic, qos, noLocal: this.isV5 && s.nl === true, retainHandling: this.isV5 ? (s.rh ?? 0) : 0 };
          reader.parsed({ op: 'sub', topic: s.topic, id: this.expect(pending) }, index === 0 ? bytes : 0);
        });
        return undefined;
      }
      case 'unsubscribe': {
        const list = packet.unsubscriptions;
        if (list.length === 0) return 'UNSUBSCRIBE without topic filters';
        const group: AckGroup = { pid: packet.messageId!, codes: new Array<number>(list.length).fill(0), left: list.length };
        list.forEach((filter, index) => {
          reader.parsed({ op: 'unsub', topic: filter, id: this.expect({ kind: 'unsub', group, index, filter }) }, index === 0 ? bytes : 0);
        });
        return undefined;
      }
      case 'pingreq':
        reader.parsed({ op: 'ping', id: this.expect({ kind: 'ping' }) }, bytes);
        return undefined;
      case 'disconnect':
        // v5 reason 0x04: "disconnect with will message".
        this.disconnected = !(this.isV5 && packet.reasonCode === 0x04);
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

  /** A numeric frame id the engine's answer will carry. */
  private expect(p: Pending): number {
    const id = this.nextRequestId++;
    this.pending.set(id, p);
    return id;
  }

  /** Queues an answer the broker gives itself, behind what is already queued. */
  private answer(p: Pending): undefined {
    this.link!.send({ op: 'ack', id: this.expect(p) });
    return undefined;
  }

  // ---- outbound (the writer's flush) ----

  encode(out: Outgoing): Buffer {
    const f = out.frame;
    switch (f.op) {
      case 'msg':
        return this.publish(out, f.topic);
      case 'ack':
      case 'error':
        return this.reply(f);
      case 'pong':
        return f.id === undefined ? NOTHING : this.reply({ op: 'ack', id: f.id });
      case 'hello':
        return this.connack();
      default:
        // Presence events and directs have no MQTT form (docs/mqtt.md).
        return NOTHING;
    }
  }

  private connack(): Buffer {
    this.connacked = true;
    const sessionPresent = this.options.stored !== undefined;
    if (!this.isV5) return mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent });
    const properties: Record<string, unknown> = { retainAvailable: this.options.retained !== undefined, sharedSubscriptionAvailable: false, subscriptionIdentifiersAvailable: false, topicAliasMaximum: 0 };
    if (this.options.assignedId) properties.assignedClientIdentifier = this.link!.name;
    return mqttPacket.generate({ cmd: 'connack', reasonCode: 0, sessionPresent, properties }, this.generateOptions);
  }

  /**
   * The QoS `topic` is delivered at: the highest of the matching filters; undefined when none matches (`$` topics,
   * or only No Local filters for the client's `own` message).
   */
  qosFor(topic: string, own = false): QoS | undefined {
    let best: QoS | undefined;
    for (const [filter, qos] of this.filters) {
      if (own && this.noLocal.has(filter)) continue;
      if ((best === undefined || qos > best) && mqttMatches(filter, topic)) best = qos;
    }
    return best;
  }

  private publish(out: Outgoing, topic: string): Buffer {
    const granted = this.qosFor(topic, this.noLocal.size > 0 && out.sender?.id === this.link?.id);
    if (granted === undefined) return NOTHING;
    if (this.retainedReads.length > 0 && this.holdBehindRetained(out, topic)) return NOTHING;
    // At the lower of the publisher's QoS and the subscription's (MQTT-3.8.4: a QoS 0 publish is never upgraded).
    const qos = granted <= out.maxQos ? granted : out.maxQos;
    const delivery = deliveryOf(out);
    const ts = (out.frame as { ts: number }).ts;
    const properties = propertiesNow(delivery, ts);
    if (properties === null) return NOTHING; // expired while it waited (a resumed session, a slow subscriber)
    if (this.positions) {
      const f = out.frame as { seq: number; epoch: string };
      this.remember(topic, { seq: f.seq, epoch: f.epoch });
    }
    if (qos === 0 && properties === delivery.properties) return this.fits(out.bytesFor(qos0Encodings[this.generateOptions.protocolVersion]));
    const v5properties = this.isV5 && properties ? { properties } : {};
    if (qos === 0) return this.fits(mqttPacket.generate({ cmd: 'publish', topic, payload: delivery.payload, qos: 0, dup: false, retain: false, ...v5properties }, this.generateOptions));
    const pid = this.packetId();
    if (pid === undefined) {
      // Too many messages unacknowledged: the client stopped acknowledging; that is a slow consumer.
      queueMicrotask(() => this.link?.signal({ type: 'SLOW_CONSUMER' }));
      return NOTHING;
    }
    const packet = mqttPacket.generate({ cmd: 'publish', topic, payload: delivery.payload, qos, messageId: pid, dup: false, retain: false, ...v5properties }, this.generateOptions);
    if (this.fits(packet).length === 0) return NOTHING;
    this.inflight.set(pid, { qos, released: false, payload: out, topic, retain: false });
    return packet;
  }

  /** `packet`, or nothing when it is larger than the client said it takes (5.0 maximum packet size) [MQTT-3.1.2-25]. */
  private fits(packet: Buffer): Buffer {
    const max = this.options.maxPacket;
    return max !== undefined && packet.length > max ? NOTHING : packet;
  }

  private packetId(): number | undefined {
    if (this.inflight.size >= Math.min(MAX_PACKET_ID, this.options.maxInflight)) return undefined;
    while (this.inflight.has(this.nextPacketId)) this.nextPacketId = (this.nextPacketId % MAX_PACKET_ID) + 1;
    const pid = this.nextPacketId;
    this.nextPacketId = (pid % MAX_PACKET_ID) + 1;
    return pid;
  }

  private reply(f: Extract<ServerFrame, { op: 'ack' | 'error' }>): Buffer {
    const id = f.id;
    const p = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (p === undefined) {
      if (f.op === 'error' && f.id === undefined && PUBLISH_REFUSALS.has(f.code)) this.refused(f.code, f.message);
      return NOTHING;
    }
    this.pending.delete(id as number);
    const error = f.op === 'error' ? f : undefined;
    const v5 = this.isV5;
    const o = this.generateOptions;
    switch (p.kind) {
      case 'sub':
        if (!error) {
          // Retain handling (5.0): 0 sends the retained messages, 1 only for a new subscription, 2 never.
          const fresh = !this.filters.has(p.filter);
          if (p.noLocal) this.noLocal.add(p.filter);
          else this.noLocal.delete(p.filter);
          this.subscribed(p.filter, p.qos, f, p.retainHandling === 0 || (p.retainHandling === 1 && fresh));
        }
        return this.settle(p.group, p.index, error ? (v5 ? reasonOfError(error.code) : SUBACK_FAILURE_V4) : p.qos, 'suback');
      case 'resub':
        if (!error) this.subscribed(p.filter, p.qos, f, false);
        else if (TRANSIENT.has(error.code)) {
          // The broker could not resume it now (its store did not answer): the session keeps the filter and the
          // connection ends, so the client comes back and resumes again, instead of silently losing a subscription.
          this.filters.set(p.filter, p.qos);
          queueMicrotask(() => this.link?.signal({ type: 'CLOSE', code: CLOSE.tryAgainLater, reason: `the session's filter '${p.filter}' could not be resumed now: ${error.code}`.slice(0, 120), cause: 'leave' }));
        }
        // Otherwise the broker no longer allows the filter (a new token): it is dropped from the session.
        return NOTHING;
      case 'retained': {
        const { message, qos } = p;
        const properties = message.properties ? propertiesNow({ payload: message.payload, properties: message.properties }, message.at ?? Date.now()) : undefined;
        if (properties === null) return NOTHING; // its message expiry passed
        const pid = qos === 0 ? undefined : this.packetId();
        if (qos !== 0 && pid === undefined) return NOTHING;
        const packet = { cmd: 'publish' as const, topic: message.topic, payload: message.payload, qos, dup: false, retain: true, ...(pid === undefined ? {} : { messageId: pid }), ...(v5 && properties ? { properties } : {}) };
        if (pid !== undefined) this.inflight.set(pid, { qos: qos as 1 | 2, released: false, payload: message.payload, topic: message.topic, retain: true });
        return mqttPacket.generate(packet, o);
      }
      case 'retainedEnd': {
        // Every live message queued before the retained ones was held when written (the read was still on); those
        // after this one in this flush are too. Once it is over, the read ends and they are queued again, in order.
        const read = p.read;
        queueMicrotask(() => this.endRetainedRead(read));
        return NOTHING;
      }
      case 'resend': {
        const flight = this.inflight.get(p.pid);
        if (!flight) return NOTHING;
        const payload = Buffer.isBuffer(flight.payload) ? flight.payload : (flight.payload as Outgoing).bytesFor(payloadEncoding);
        return mqttPacket.generate({ cmd: 'publish', topic: flight.topic, payload, qos: flight.qos, messageId: p.pid, dup: true, retain: flight.retain }, o);
      }
      case 'pub0':
        if (error) return this.refused(error.code, error.message);
        void this.retain(p.retain, f)();
        return NOTHING;
      case 'unsub':
        if (!error) {
          this.filters.delete(p.filter);
          this.noLocal.delete(p.filter);
        }
        return this.settle(p.group, p.index, error ? reasonOfError(error.code) : 0, 'unsuback');
      case 'puback':
      case 'pubrec': {
        // 3.1.1 cannot refuse a publish: the spec's other choice is closing the connection.
        if (error && !v5) return this.refused(error.code, error.message);
        if (error && p.kind === 'pubrec') this.received.delete(p.pid);
        const packet = error
          ? mqttPacket.generate({ cmd: p.kind, messageId: p.pid, reasonCode: pubReason(error.code), properties: { reasonString: error.message.slice(0, 200) } }, o)
          : mqttPacket.generate({ cmd: p.kind, messageId: p.pid }, o);
        if (!error && p.retain) return this.afterRetained(this.retain(p.retain, f), packet);
        return this.held ? this.afterRetained(undefined, packet) : packet;
      }
      case 'ready':
        return p.packet;
      case 'pubcomp':
      case 'pubrel':
        return mqttPacket.generate({ cmd: p.kind, messageId: p.pid }, o);
      case 'ping':
        return mqttPacket.generate({ cmd: 'pingresp' }, o);
    }
  }

  /** A retained publish the engine took: kept, ordered by its position (the last publish of a topic wins on every node). */
  private retain(message: Retained, ack: Extract<ServerFrame, { op: 'ack' | 'error' }>): () => Promise<void> {
    const { seq, epoch } = ack as { seq?: unknown; epoch?: unknown };
    const order = typeof seq === 'number' && typeof epoch === 'string' ? { seq, epoch } : undefined;
    return () => this.options.retained?.set({ ...message, at: Date.now() }, order) ?? Promise.resolve();
  }

  /**
   * `packet` (a PUBACK or PUBREC) once `write` and every retained write before it are done: its answer then means
   * the retained message is kept (a shared store answers later), and answers keep the order of the publishes.
   */
  private afterRetained(write: (() => Promise<void>) | undefined, packet: Buffer): Buffer {
    const mine: Promise<void> = (this.held ?? Promise.resolve())
      .then(write)
      .then(() => void this.answer({ kind: 'ready', packet }))
      .finally(() => {
        if (this.held === mine) this.held = undefined;
      });
    this.held = mine;
    return NOTHING;
  }

  /**
   * A filter the engine took: held at its QoS, the engine life noted (persistent sessions), and the retained
   * messages it matches queued behind the SUBACK (after this flush: never push into a mailbox while it is written;
   * a shared store answers later: live messages of its topics written before the read is over are held, and
   * follow the retained ones).
   */
  private subscribed(filter: string, qos: QoS, ack: Extract<ServerFrame, { op: 'ack' | 'error' }>, retained = true): void {
    this.filters.set(filter, qos);
    const life = (ack as { life?: unknown }).life;
    if (typeof life === 'string') this.life = life;
    const store = this.options.retained;
    if (!retained || !store) return;
    const read: RetainedRead = { filter, held: [] };
    this.retainedReads.push(read);
    const done = (messages: Retained[]) => {
      if (!this.link?.isOpen) return this.endRetainedRead(read);
      for (const message of messages) this.answer({ kind: 'retained', message, qos: Math.min(qos, message.qos) as QoS });
      // The read ends behind them, in the mailbox's order: a live message already queued (not yet written) when the
      // read came back is held when written, not sent before the retained messages queued after it.
      this.answer({ kind: 'retainedEnd', read });
    };
    store.matching(filter, RETAINED_PER_FILTER).then(done, () => done([]));
  }

  /** The end of a retained read: the live messages it held are queued again, in their order (written after it). */
  private endRetainedRead(read: RetainedRead): void {
    const at = this.retainedReads.indexOf(read);
    if (at < 0) return;
    this.retainedReads.splice(at, 1);
    if (!this.link?.isOpen) return;
    for (const out of read.held) this.link.mailbox.push(out);
  }

  /** Holds a live message of a topic whose retained messages are still being read; false when none is (or the hold is full). */
  private holdBehindRetained(out: Outgoing, topic: string): boolean {
    for (const read of this.retainedReads) {
      if (read.held.length < RETAINED_HOLD_MAX && mqttMatches(read.filter, topic)) {
        read.held.push(out);
        return true;
      }
    }
    return false;
  }

  /** Records one filter's answer; the whole SUBACK / UNSUBACK once every filter of the packet has one. */
  private settle(group: AckGroup, index: number, code: number, cmd: 'suback' | 'unsuback'): Buffer {
    group.codes[index] = code;
    if (--group.left > 0) return NOTHING;
    if (cmd === 'unsuback' && !this.isV5) return mqttPacket.generate({ cmd, messageId: group.pid } as Packet, this.generateOptions);
    return mqttPacket.generate({ cmd, messageId: group.pid, granted: group.codes } as Packet, this.generateOptions);
  }

  /** A publish MQTT cannot refuse in band: the connection is closed, saying why (v5: DISCONNECT with the reason). */
  private refused(code: string, message: string): Buffer {
    const close = code === 'too_large' ? CLOSE.tooLarge : code === 'rate_limited' ? CLOSE.policy : code === 'internal' || code === 'unavailable' ? CLOSE.tryAgainLater : CLOSE.policy;
    const reason = code === 'rate_limited' ? 'rate limit exceeded' : `publish refused (${code}): ${message}`.slice(0, 120);
    // Not from inside the writer's flush: the machine's close flushes this same mailbox.
    queueMicrotask(() => this.link?.signal({ type: 'CLOSE', code: close, reason, cause: 'leave' }));
    return NOTHING;
  }

  /** The bytes that end the connection: a refused CONNACK before it was accepted, a v5 DISCONNECT after. */
  closing(code: number, reason: string): Buffer {
    const o = this.generateOptions;
    if (!this.connacked) {
      const refusal = code === CLOSE.tryAgainLater || code === CLOSE.goingAway ? (this.isV5 ? 0x88 : 3) : this.isV5 ? 0x80 : 3;
      this.connacked = true;
      return mqttPacket.generate(this.isV5 ? { cmd: 'connack', reasonCode: refusal, sessionPresent: false } : { cmd: 'connack', returnCode: refusal, sessionPresent: false }, o);
    }
    if (!this.isV5 || code === CLOSE.normal) return NOTHING;
    return mqttPacket.generate({ cmd: 'disconnect', reasonCode: disconnectReason(code, reason), properties: { reasonString: reason.slice(0, 200) } }, o);
  }
}

/** The will a CONNECT carries, as the message it becomes. */
export function willOf(connect: IConnectPacket): { topic: string; data: unknown } | undefined {
  const will = connect.will;
  if (!will) return undefined;
  const payload = typeof will.payload === 'string' ? Buffer.from(will.payload) : will.payload;
  return { topic: will.topic, data: dataOfPayload(payload, connect.protocolVersion === 5 ? will.properties : undefined) };
}


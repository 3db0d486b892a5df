// MqttSession: one MQTT connection's protocol state between its socket and its Link. Inbound packets become the
// broker's own requests (sub, unsub, pub, ping, quit) through the connection's FrameReader, so every limit and
// grant applies as on any transport; outbound frames (hello, msg, ack, error, pong) become MQTT packets here,
// in the writer's flush, with the packet ids and QoS exchanges that MQTT adds. Its parts: packets.ts (bytes that
// depend on a message or a close alone: PUBLISH shared by a message's subscribers, a retained message's, the closing
// CONNACK or DISCONNECT), pending.ts (the requests awaiting the engine's answer), positions.ts (where a persistent
// session got to) and retained-order.ts (retained messages against live ones and against PUBACKs).
import mqttPacket, { type Packet, type QoS } from 'mqtt-packet';
import type { Link } from '../../actors/link.js';
import type { FrameReader } from '../../actors/reader.js';
import type { Outgoing } from '../../protocol/outgoing.js';
import type { ServerFrame } from '../../protocol/frames.js';
import { CLOSE, type FrameId } from '../../protocol/errors.js';
import { dataOfPayload } from './payload.js';
import { pubReason, reasonOfError, refusalClose, SUBACK_FAILURE_V4 } from './codes.js';
import { mqttMatches } from './match.js';
import { closingPacket, deliveryOf, payloadEncoding, propertiesNow, qos0Encodings, retainedPacket, retainedProperties } from './packets.js';
import { SessionPositions } from './positions.js';
import { settle, type AckGroup, type Pending } from './pending.js';
import { RetainedReads, RetainedWrites } from './retained-order.js';
import type { PacketProperties } from './payload.js';
import { OWN_IDS, type Inflight, type Position, type RetainedStore, type StoredSession } from './store.js';

export type MqttVersion = 3 | 4 | 5;

/** Errors that say nothing about the request itself: the broker could not serve it now. */
const TRANSIENT: ReadonlySet<string> = new Set(['unavailable', 'outcome_unknown']);

/** Refusals the engine reports without an id: only a QoS 0 publish (sent without one) can have caused them. */
const PUBLISH_REFUSALS: ReadonlySet<string> = new Set(['bad_topic', 'forbidden', 'too_large', 'bad_frame', 'rate_limited', 'unavailable', 'internal']);

const NOTHING = Buffer.alloc(0);
/** SUBACK reason code 0x9E: shared subscriptions not supported (5.0). */
const SHARED_NOT_SUPPORTED = 0x9e;

/** A resent message's 5.0 properties: as first sent, the expiry counting down (at least 1 s: its delivery had begun). */
function resentProperties(out: Outgoing): PacketProperties | undefined {
  const delivery = deliveryOf(out);
  const now = propertiesNow(delivery, (out.frame as { ts: number }).ts);
  return now === null ? { ...delivery.properties, messageExpiryInterval: 1 } : now;
}
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

export class MqttSession {
  private link: Link | undefined;
  private reader: FrameReader | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextRequestId = 1;
  /** Granted QoS by filter: the QoS a message is delivered at is the highest of the filters it matches. */
  readonly filters: Map<string, QoS>;
  private readonly inflight: Map<number, Inflight>;
  /** While a resume resends (resume()): the unacknowledged messages it found, in order, and how far it got. */
  private toResend: number[] | undefined;
  private resendAt = 0;
  /** Resent by the resume and not completed yet: its window. */
  private readonly resent = new Set<number>();
  /** Cut as a slow consumer (its in-flight bound full): nothing more is sent. */
  private cut = false;
  /** The ids of the session's earlier connections (No Local holds back their publishes on resume too). */
  private readonly earlier: string[];
  private nextPacketId: number;
  /** Persistent sessions (and resumed ones): where it got to per topic, and the engine life those positions are from. */
  private readonly positions: SessionPositions | undefined;
  /** 5.0 filters subscribed with No Local: the client's own messages do not come back through them. */
  private readonly noLocal = new Set<string>();
  /**
   * Filters whose retained messages are being read (a shared store answers later than the SUBACK), with the live
   * messages of their topics held meanwhile, so a retained message never arrives after a newer live one.
   */
  private readonly reads = new RetainedReads({
    open: () => this.link?.isOpen === true,
    requeue: (out) => this.link!.mailbox.push(out),
    unsent: (held) => this.unsent(held),
    retained: (message, qos) => this.answer({ kind: 'retained', message, qos }),
    ended: (read) => this.answer({ kind: 'retainedEnd', read }),
  });
  /** Retained messages being kept: PUBACKs and PUBRECs wait behind them, in order. */
  private readonly writes: RetainedWrites;
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
    // Session state too (MQTT 4.1): QoS 2 ids awaiting PUBREL (exactly once across a reconnect) and No Local filters.
    for (const pid of stored?.received ?? []) this.received.add(pid);
    for (const filter of stored?.noLocal ?? []) this.noLocal.add(filter);
    this.earlier = stored?.ids ?? [];
    // A resumed session resumes from its positions even when it will not be kept afterwards (5.0 expiry 0 this time).
    const positions = stored?.positions ?? (options.persistent ? new Map<string, Position>() : undefined);
    this.positions = positions && new SessionPositions(positions, stored?.life);
    this.writes = new RetainedWrites(options.retained, (packet) => this.answer({ kind: 'ready', packet }));
  }

  /**
   * After CONNACK: the unacknowledged messages again (DUP), in the order first sent, then every filter resumed from
   * where it got to. The resends go a window at a time (a quarter of the in-flight bound, --mailbox-size), the next
   * as the client completes one: a session that left with its in-flight bound full resends as many messages as its
   * mailbox holds, which queued at once with the CONNACK would overflow it at every try. The filters resume once the
   * last one is resent, so nothing newer of a topic overtakes a resend.
   */
  resume(): void {
    if (!this.options.stored) return;
    this.toResend = [...this.inflight.keys()];
    this.resendMore();
  }

  /**
   * The frames the connection's mailbox held unwritten when it ended (mailbox.ts discard): a message on a topic the
   * session has no position for yet moves its position to just before it, so the resume delivers it.
   */
  unsent(queue: readonly Outgoing[]): void {
    if (!this.positions) return;
    for (const out of queue) {
      const f = out.frame;
      if (f.op === 'msg' && typeof f.seq === 'number' && typeof f.epoch === 'string' && this.qosFor(f.topic) !== undefined) this.positions.before(f.topic, f);
    }
  }

  /** Resends while the window has room; after the last one, resumes the filters (once). */
  private resendMore(): void {
    const window = Math.max(1, Math.floor(this.options.maxInflight / 4));
    const pids = this.toResend!;
    while (this.resent.size < window && this.resendAt < pids.length) {
      const pid = pids[this.resendAt++]!;
      const flight = this.inflight.get(pid);
      if (!flight) continue;
      this.resent.add(pid);
      if (flight.released) this.answer({ kind: 'pubrel', pid });
      else this.answer({ kind: 'resend', pid });
    }
    if (this.resendAt < pids.length) return;
    this.toResend = undefined;
    for (const [filter, qos] of this.filters) {
      this.filters.delete(filter); // held again once the engine acknowledges it
      this.reader!.own({ op: 'sub', topic: filter, ...(this.positions?.of(filter) ?? { since: 0 }), id: this.expect({ kind: 'resub', filter, qos }) });
    }
    // SUBSCRIBE / UNSUBSCRIBE requests that came meanwhile (counted and rate-limited as they came), after them.
    this.reader!.serveLater();
  }

  /** `pid` completed (PUBACK, PUBCOMP): out of flight, and, while resuming, room for the next resend. */
  private completed(pid: number): void {
    this.inflight.delete(pid);
    if (this.resent.delete(pid) && this.toResend) this.resendMore();
  }

  /**
   * The connection is over and these requests were never served (a publish still waiting for the application
   * backend's hook): a QoS 2 PUBLISH among them was not received after all, so its resend (DUP) is published.
   */
  unserved(ids: Iterable<FrameId>): void {
    for (const id of ids) {
      const p = typeof id === 'number' ? this.pending.get(id) : undefined;
      if (p?.kind === 'pubrec') this.received.delete(p.pid);
    }
  }

  /**
   * What is kept when the connection ends, or undefined for a clean session. `current`: the positions of the topics
   * its filters match now, so that what is published while it is away is what it resumes.
   */
  keep(current: (filter: string) => Iterable<[string, Position]>, expiresAt: number): StoredSession | undefined {
    if (!this.options.persistent || !this.positions) return undefined;
    const filters = this.sessionFilters();
    // Live messages a retained read still holds are not sent either.
    this.unsent(this.reads.held);
    // Only filters the engine holds get the positions of now for topics without one. Filters not resumed yet (it
    // left while its resends went out, or before the engine acknowledged a resume) keep the positions they were kept
    // with: filled now, a topic they had none for (new while it was away: replayed from its start) would skip what
    // came on it.
    if (!this.toResend) this.positions.fill(this.filters.keys(), current);
    const noLocal = [...this.noLocal].filter((f) => filters.has(f));
    const ids = [...this.earlier, ...(this.link ? [this.link.id] : [])].slice(-OWN_IDS);
    return { filters, positions: this.positions.byTopic, life: this.positions.life, inflight: this.inflight, nextPacketId: this.nextPacketId, received: [...this.received], noLocal, ids, expiresAt };
  }

  /** The session's filters: those held, and those of a resume the engine has not acknowledged yet (still the session's). */
  sessionFilters(): Map<string, QoS> {
    const filters = new Map(this.filters);
    for (const p of this.pending.values()) if (p.kind === 'resub' && !filters.has(p.filter)) filters.set(p.filter, p.qos);
    return filters;
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
        // The DUP flag MUST be 0 on QoS 0 [MQTT-3.3.1-2]; a zero-length topic without a topic alias is a protocol error (5.0, 3.3.2.1).
        if (packet.qos === 0 && packet.dup) return 'malformed packet: DUP set on a QoS 0 PUBLISH';
        if (packet.topic.length === 0) return 'a PUBLISH with an empty topic name and no topic alias';
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
        this.completed(packet.messageId!);
        return undefined;
      case 'pubrec': {
        const flight = this.inflight.get(packet.messageId!);
        if (flight) flight.released = true;
        return this.answer({ kind: 'pubrel', pid: packet.messageId! });
      }
      case 'pubcomp':
        this.completed(packet.messageId!);
        return undefined;
      case 'subscribe': {
        const subs = packet.subscriptions;
        if (subs.length === 0) return 'SUBSCRIBE without topic filters';
        // While the resume resends, served once the filters are resumed (a live subscription before would let new
        // messages overtake the resends, and move positions past what came while away); counted now, as they come.
        const later = this.toResend !== undefined;
        const group: AckGroup = { pid: packet.messageId!, codes: new Array<number>(subs.length).fill(0), left: subs.length };
        subs.forEach((s, index) => {
          const qos = Math.min(Math.max(s.qos, 0), 2) as QoS;
          const shared = this.isV5 && s.topic.startsWith('$share/');
          const pending = { kind: 'sub' as const, group, index, filter: s.topic, qos, noLocal: this.isV5 && s.nl === true, retainHandling: this.isV5 ? (s.rh ?? 0) : 0, shared };
          // A shared subscription (not available, CONNACK says) is refused 0x9E in its turn: a ping stands in for it,
          // counted against the rate like any filter, so the SUBACK keeps its order.
          reader.parsed(shared ? { op: 'ping', id: this.expect(pending) } : { op: 'sub', topic: s.topic, id: this.expect(pending) }, index === 0 ? bytes : 0, later);
        });
        return undefined;
      }
      case 'unsubscribe': {
        const list = packet.unsubscriptions;
        if (list.length === 0) return 'UNSUBSCRIBE without topic filters';
        const later = this.toResend !== undefined;
        const group: AckGroup = { pid: packet.messageId!, codes: new Array<number>(list.length).fill(0), left: list.length };
        list.forEach((filter, index) => {
          reader.parsed({ op: 'unsub', topic: filter, id: this.expect({ kind: 'unsub', group, index, filter }) }, index === 0 ? bytes : 0, later);
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

  /**
   * The engine's answer as it is sent, before its turn in the mailbox (which a congested or closing connection may
   * never write): a retained publish the engine took is kept now, in the order the engine took them, so a later
   * publish of another connection is not overwritten, and a publish delivered live is kept though its client left.
   */
  answered(f: ServerFrame): void {
    if (f.op !== 'ack' || typeof f.id !== 'number') return;
    const p = this.pending.get(f.id);
    if (p?.kind === 'pub0' || p?.kind === 'puback' || p?.kind === 'pubrec') this.keepRetained(p, f);
  }

  /** Starts keeping the retained message of a publish the engine took (answer `f`), once: its write, or undefined (none). */
  private keepRetained(p: Extract<Pending, { kind: 'pub0' | 'puback' | 'pubrec' }>, f: Extract<ServerFrame, { op: 'ack' | 'error' }>): Promise<void> | undefined {
    if (!p.retain) return undefined;
    return (p.kept ??= this.writes.start(this.writes.keep(p.retain, f)));
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

  /** Whether a message from `sender` is the session's own: this connection's, or an earlier one's (a resume replays those). */
  private own(sender: string): boolean {
    return sender === this.link?.id || this.earlier.includes(sender);
  }

  private publish(out: Outgoing, topic: string): Buffer {
    const granted = this.qosFor(topic, this.noLocal.size > 0 && out.sender !== undefined && this.own(out.sender.id));
    if (granted === undefined) return NOTHING;
    if (this.reads.reading && this.reads.hold(out, topic)) return NOTHING;
    // At the lower of the publisher's QoS and the subscription's (MQTT-3.8.4: a QoS 0 publish is never upgraded).
    const qos = granted <= out.maxQos ? granted : out.maxQos;
    const delivery = deliveryOf(out);
    const ts = (out.frame as { ts: number }).ts;
    const properties = propertiesNow(delivery, ts);
    if (properties === null) return NOTHING; // expired while it waited (a resumed session, a slow subscriber)
    const f = this.positions ? (out.frame as { seq: number; epoch: string }) : undefined;
    // Once per connection, as live messages are: a resume of two filters matching one topic replays it for each.
    if (f && this.positions!.delivered(topic, f)) return NOTHING;
    // QoS 1 and 2 take a packet id first: a message that cannot have one is not sent, and the position stays before
    // it, so a resume of the session delivers it. So does every message after it: the session is being cut.
    const pid = this.cut ? undefined : qos === 0 ? 0 : this.packetId();
    if (pid === undefined) {
      // Too many messages unacknowledged: the client stopped acknowledging; that is a slow consumer.
      if (f) this.positions!.before(topic, f);
      return this.slowConsumer();
    }
    if (f) this.positions!.remember(topic, { seq: f.seq, epoch: f.epoch });
    if (qos === 0 && properties === delivery.properties) return this.fits(out.bytesFor(qos0Encodings[this.generateOptions.protocolVersion]));
    const v5properties = this.isV5 && properties ? { properties } : {};
    if (qos === 0) return this.fits(mqttPacket.generate({ cmd: 'publish', topic, payload: delivery.payload, qos: 0, dup: false, retain: false, ...v5properties }, this.generateOptions));
    const packet = mqttPacket.generate({ cmd: 'publish', topic, payload: delivery.payload, qos, messageId: pid, dup: false, retain: false, ...v5properties }, this.generateOptions);
    if (this.fits(packet).length === 0) return NOTHING;
    this.inflight.set(pid, { qos, released: false, payload: out, topic, retain: false });
    return packet;
  }

  /** The session is cut as a slow consumer (once): nothing more is sent. */
  private slowConsumer(): Buffer {
    if (!this.cut) queueMicrotask(() => this.link?.signal({ type: 'SLOW_CONSUMER' }));
    this.cut = true;
    return NOTHING;
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
        if (!error && p.shared) return settle(p.group, p.index, SHARED_NOT_SUPPORTED, 'suback', o) ?? NOTHING;
        if (!error) {
          // Retain handling (5.0): 0 sends the retained messages, 1 only for a new subscription, 2 never.
          const fresh = !this.filters.has(p.filter);
          if (p.noLocal) this.noLocal.add(p.filter);
          else this.noLocal.delete(p.filter);
          this.subscribed(p.filter, p.qos, f, p.retainHandling === 0 || (p.retainHandling === 1 && fresh));
        }
        return settle(p.group, p.index, error ? (v5 ? reasonOfError(error.code) : SUBACK_FAILURE_V4) : p.qos, 'suback', o) ?? NOTHING;
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
        const properties = retainedProperties(message);
        if (properties === null) return NOTHING; // its message expiry passed
        const pid = qos === 0 ? undefined : this.packetId();
        // No packet id free: the client stopped acknowledging; cut as a slow consumer, as for a live message.
        if (qos !== 0 && pid === undefined) return this.slowConsumer();
        // Larger than the client takes (5.0 maximum packet size): not sent, as if it had been [MQTT-3.1.2-25].
        const packet = this.fits(retainedPacket(message, qos, pid, properties, o));
        if (packet.length === 0) return NOTHING;
        if (pid !== undefined) this.inflight.set(pid, { qos: qos as 1 | 2, released: false, payload: message.payload, topic: message.topic, retain: true });
        return packet;
      }
      case 'retainedEnd': {
        // Every live message queued before the retained ones was held when written (the read was still on); those
        // after this one in this flush are too. Once it is over, the read ends and they are queued again, in order.
        const read = p.read;
        queueMicrotask(() => this.reads.end(read));
        return NOTHING;
      }
      case 'resend': {
        const flight = this.inflight.get(p.pid);
        if (!flight) return NOTHING;
        const payload = Buffer.isBuffer(flight.payload) ? flight.payload : (flight.payload as Outgoing).bytesFor(payloadEncoding);
        // The same message again: on 5.0 with its properties (its expiry counting down; delivery had begun).
        const resent = v5 && !Buffer.isBuffer(flight.payload) ? resentProperties(flight.payload as Outgoing) : undefined;
        const packet = this.fits(mqttPacket.generate({ cmd: 'publish', topic: flight.topic, payload, qos: flight.qos, messageId: p.pid, dup: true, retain: flight.retain, ...(resent && { properties: resent }) }, o));
        // Larger than this connection takes: dropped as if delivered [MQTT-3.1.2-25] (not from inside the flush).
        if (packet.length === 0) queueMicrotask(() => this.completed(p.pid));
        return packet;
      }
      case 'pub0':
        if (error) return this.refused(error.code, error.message);
        this.keepRetained(p, f);
        return NOTHING;
      case 'unsub':
        if (!error) {
          this.filters.delete(p.filter);
          this.noLocal.delete(p.filter);
        }
        return settle(p.group, p.index, error ? reasonOfError(error.code) : 0, 'unsuback', o) ?? NOTHING;
      case 'puback':
      case 'pubrec': {
        // A refused QoS 2 publish was not received: a resend of it (DUP, after a reconnect) is published then.
        if (error && p.kind === 'pubrec') this.received.delete(p.pid);
        // 3.1.1 cannot refuse a publish: the spec's other choice is closing the connection.
        if (error && !v5) return this.refused(error.code, error.message);
        const packet = error
          ? mqttPacket.generate({ cmd: p.kind, messageId: p.pid, reasonCode: pubReason(error.code), properties: { reasonString: error.message.slice(0, 200) } }, o)
          : mqttPacket.generate({ cmd: p.kind, messageId: p.pid }, o);
        if (!error && p.retain) this.writes.after(this.keepRetained(p, f), packet);
        else if (this.writes.waiting) this.writes.after(undefined, packet);
        else return packet;
        return NOTHING;
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

  /**
   * A filter the engine took: held at its QoS, the engine life noted (persistent sessions), and the retained
   * messages it matches queued behind the SUBACK (after this flush: never push into a mailbox while it is written;
   * a shared store answers later: live messages of its topics written before the read is over are held, and
   * follow the retained ones).
   */
  private subscribed(filter: string, qos: QoS, ack: Extract<ServerFrame, { op: 'ack' | 'error' }>, retained = true): void {
    this.filters.set(filter, qos);
    const life = (ack as { life?: unknown }).life;
    if (typeof life === 'string' && this.positions) this.positions.life = life;
    const store = this.options.retained;
    if (retained && store) this.reads.start(store, filter, qos);
  }

  /** A publish MQTT cannot refuse in band: the connection is closed, saying why (v5: DISCONNECT with the reason). */
  private refused(code: string, message: string): Buffer {
    const close = refusalClose(code, message);
    // Not from inside the writer's flush: the machine's close flushes this same mailbox.
    queueMicrotask(() => this.link?.signal({ type: 'CLOSE', ...close, cause: 'leave' }));
    return NOTHING;
  }

  /** The bytes that end the connection: a refused CONNACK before it was accepted, a v5 DISCONNECT after. */
  closing(code: number, reason: string): Buffer {
    const packet = closingPacket(this.generateOptions.protocolVersion, this.connacked, code, reason);
    this.connacked = true;
    return packet ?? NOTHING;
  }
}

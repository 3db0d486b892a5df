// MqttSession: one MQTT connection's protocol state between its socket and its Link. Inbound packets become the
// broker's own requests (sub, unsub, pub, ping, quit) through the connection's FrameReader (inbound.ts), so every
// limit and grant applies as on any transport; outbound frames (hello, msg, ack, error, pong) become MQTT packets
// here, in the writer's flush, with the packet ids and QoS exchanges that MQTT adds. Its parts: inbound.ts (the
// client's packets), packets.ts (bytes that depend on a message or a close alone: PUBLISH shared by a message's
// subscribers, a retained message's, the closing CONNACK or DISCONNECT), pending.ts (the requests awaiting the
// engine's answer), replies.ts (the packets those answers become), flights.ts (packet ids, the messages in flight,
// their resending on resume), flow.ts (5.0 Receive Maximum: the messages waiting for the client's, the client's
// publishes against the broker's), positions.ts (where a persistent session got to), retained-order.ts (retained
// messages against live ones and against PUBACKs), filter-options.ts (5.0 No Local, Retain As Published and
// Subscription Identifiers: what a message goes out with beyond its QoS) and session-options.ts (what it is opened
// with; expiry.ts: how long it outlives the connection).
import type { Packet, QoS } from 'mqtt-packet';
import type { Link } from '../../actors/link.js';
import type { FrameReader } from '../../actors/reader.js';
import type { Outgoing } from '../../protocol/outgoing.js';
import type { ServerFrame } from '../../protocol/frames.js';
import { CLOSE, type FrameId } from '../../protocol/errors.js';
import { refusalClose } from './codes.js';
import { Flights } from './flights.js';
import { InboundQuota, SendQueue, type Waiting } from './flow.js';
import { inboundPacket, type InboundSession } from './inbound.js';
import { grantedQos } from './match.js';
import { FilterOptions, PLAIN, type Marks } from './filter-options.js';
import { closingPacket, connackPacket, deliveryOf, livePacket, NOTHING, propertiesNow } from './packets.js';
import { SessionPositions } from './positions.js';
import type { Pending } from './pending.js';
import { keepRetained, replyTo, retainedNow, type Answer, type ReplySession } from './replies.js';
import { RetainedReads, RetainedWrites } from './retained-order.js';
import { OWN_IDS, type Position, type StoredSession } from './store.js';
import type { SessionOptions } from './session-options.js';
import { ServerAliases } from './aliases.js';

export class MqttSession {
  private link: Link | undefined;
  private reader: FrameReader | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextRequestId = 1;
  /** Granted QoS by filter: the QoS a message is delivered at is the highest of the filters it matches. */
  readonly filters: Map<string, QoS>;
  /** The QoS 1/2 messages sent and not acknowledged yet, their packet ids, and their resending on resume. */
  private readonly flights: Flights;
  /** Cut as a slow consumer (its in-flight bound full): nothing more is sent. */
  private cut = false;
  /** Messages waiting for room in the client's Receive Maximum, in order. */
  private readonly waiting: SendQueue;
  /** The client's unanswered QoS 1/2 PUBLISHes, against the broker's Receive Maximum (5.0). */
  private readonly inboundQuota: InboundQuota;
  /** The ids of the session's earlier connections (No Local holds back their publishes on resume too). */
  private readonly earlier: string[];
  /** Persistent sessions (and resumed ones): where it got to per topic, and the engine life those positions are from. */
  private readonly positions: SessionPositions | undefined;
  /** The 5.0 options of its filters: No Local, Retain As Published, Subscription Identifier. */
  private readonly filterOptions: FilterOptions;
  /**
   * Filters whose retained messages are being read (a shared store answers later than the SUBACK), with the live
   * messages of their topics held meanwhile, so a retained message never arrives after a newer live one.
   */
  private readonly reads = new RetainedReads({
    open: () => this.link?.isOpen === true,
    requeue: (out) => this.link!.mailbox.push(out),
    unsent: (held) => this.unsent(held),
    retained: (message, qos, ids) => this.answer({ kind: 'retained', message, qos, ids }),
    ended: (read) => this.answer({ kind: 'retainedEnd', read }),
  });
  /** Retained messages being kept: PUBACKs and PUBRECs wait behind them, in order. */
  private readonly writes: RetainedWrites;
  /** QoS 2 packet ids received and not yet released (PUBREL): a resent PUBLISH with one is not published again. */
  private readonly received = new Set<number>();
  /** CONNACK went out: a close then is a DISCONNECT (v5) or the end of the stream, not a refused CONNACK. */
  connacked = false;
  /** The client ended with DISCONNECT (5.0: reason 0x00): its will is not published. */
  disconnected = false;
  private readonly generateOptions: { protocolVersion: 4 | 5 };
  /** The topic aliases this connection's PUBLISHes go with (5.0, when the client allows them). */
  private readonly aliases: ServerAliases | undefined;
  /** What the engine's answers (replies.ts) need of the session. */
  private readonly replying: ReplySession;
  /** What the client's packets (inbound.ts) need of the session: set once the connection is attached. */
  private inbounding: InboundSession | undefined;

  constructor(readonly options: SessionOptions) {
    this.generateOptions = { protocolVersion: options.version === 5 ? 5 : 4 };
    this.aliases = options.version === 5 && options.topicAliasMaximum ? new ServerAliases(options.topicAliasMaximum) : undefined;
    this.inboundQuota = new InboundQuota(options.serverReceiveMaximum);
    const stored = options.stored;
    this.filters = stored?.filters ?? new Map();
    this.flights = new Flights(stored?.inflight ?? new Map(), stored?.nextPacketId ?? 1, options.maxInflight, {
      resend: (pid, released) => this.answer(released ? { kind: 'pubrel', pid } : { kind: 'resend', pid }),
      resent: () => this.resumeFilters(),
      freed: () => this.waiting.freed(),
    }, options.receiveMaximum);
    this.waiting = new SendQueue(this.flights, {
      cut: () => this.cut,
      packet: (w, pid) => (w.kind === 'live' ? this.send(w.out, w.topic, w.qos, pid, w.marks) : retainedNow(w.message, w.qos, pid, this.replying, w.ids)),
      turn: () => this.answer({ kind: 'release' }),
      slowConsumer: () => this.slowConsumer(),
    }, options.maxInflight, options.maxWaitingBytes ?? Infinity);
    // Session state too (MQTT 4.1): QoS 2 ids awaiting PUBREL (exactly once across a reconnect) and filters' options.
    for (const pid of stored?.received ?? []) this.received.add(pid);
    this.filterOptions = new FilterOptions(stored);
    this.earlier = stored?.ids ?? [];
    // A resumed session resumes from its positions even when it will not be kept afterwards (5.0 expiry 0 this time).
    const positions = stored?.positions ?? (options.persistent ? new Map<string, Position>() : undefined);
    this.positions = positions && new SessionPositions(positions, stored?.life);
    this.writes = new RetainedWrites(options.retained, (packet) => this.answer({ kind: 'ready', packet }));
    this.replying = {
      generateOptions: this.generateOptions,
      reasonStrings: options.noProblemInformation !== true,
      filters: this.filters,
      filterOptions: this.filterOptions,
      received: this.received,
      flights: this.flights,
      reads: this.reads,
      writes: this.writes,
      isCut: () => this.cut,
      inboundQuota: this.inboundQuota,
      waiting: this.waiting,
      wait: (w) => this.wait(w),
      subscribed: (filter, qos, ack, retained) => this.subscribed(filter, qos, ack, retained),
      fits: (packet) => this.fits(packet),
      slowConsumer: () => this.slowConsumer(),
      refused: (code, message) => this.refused(code, message),
      // Not from inside the writer's flush: the machine's close flushes this same mailbox.
      tryAgainLater: (reason) => queueMicrotask(() => this.link?.signal({ type: 'CLOSE', code: CLOSE.tryAgainLater, reason, cause: 'leave' })),
    };
  }

  /**
   * After CONNACK: the unacknowledged messages again (DUP), in the order first sent, then every filter resumed from
   * where it got to. The resends go a window at a time (a quarter of the in-flight bound, --mailbox-size, at most the
   * client's Receive Maximum), the next as the client completes one: a session that left with its in-flight bound full resends as many messages as its
   * mailbox holds, which queued at once with the CONNACK would overflow it at every try. The filters resume once the
   * last one is resent, so nothing newer of a topic overtakes a resend.
   */
  resume(): void {
    if (!this.options.stored) return;
    this.flights.resume();
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

  /** After the last resend (once): every filter resumed from where it got to, then the requests that waited for them. */
  private resumeFilters(): void {
    for (const [filter, qos] of this.filters) {
      this.filters.delete(filter); // held again once the engine acknowledges it
      this.reader!.own({ op: 'sub', topic: filter, ...(this.positions?.of(filter) ?? { since: 0 }), id: this.expect({ kind: 'resub', filter, qos }) });
    }
    // SUBSCRIBE / UNSUBSCRIBE requests that came meanwhile (counted and rate-limited as they came), after them.
    this.reader!.serveLater();
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
    // Live messages a retained read still holds are not sent either, nor those waiting for the Receive Maximum.
    this.unsent(this.reads.held);
    this.waiting.unsent((topic, at) => this.positions!.back(topic, at));
    // Only filters the engine holds get the positions of now for topics without one. Filters not resumed yet (it
    // left while its resends went out, or before the engine acknowledged a resume) keep the positions they were kept
    // with: filled now, a topic they had none for (new while it was away: replayed from its start) would skip what
    // came on it.
    if (!this.flights.resuming) this.positions.fill(this.filters.keys(), current);
    const ids = [...this.earlier, ...(this.link ? [this.link.id] : [])].slice(-OWN_IDS);
    return { filters, positions: this.positions.byTopic, life: this.positions.life, inflight: this.flights.inflight, nextPacketId: this.flights.nextPacketId, received: [...this.received], ...this.filterOptions.stored(filters), ids, expiresAt };
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
    this.inbounding = {
      reader,
      v5: this.isV5,
      retains: this.options.retained !== undefined,
      received: this.received,
      flights: this.flights,
      quota: this.isV5 ? this.inboundQuota : undefined,
      topicAliases: undefined,
      expect: (p) => this.expect(p),
      answer: (p) => this.answer(p),
      expiry: this.options.expiry,
      disconnect: (keepsWill) => (this.disconnected = !keepsWill),
    };
  }

  // ---- inbound ----

  /** One packet after CONNECT; returns a protocol violation to close with, or undefined. */
  inbound(packet: Packet, bytes: number): string | undefined {
    return inboundPacket(packet, bytes, this.inbounding!);
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
   * A QoS 1 publish answered (taken or refused) no longer counts against the broker's Receive Maximum.
   */
  answered(f: ServerFrame): void {
    if ((f.op !== 'ack' && f.op !== 'error') || typeof f.id !== 'number') return;
    const p = this.pending.get(f.id);
    if (p?.kind === 'puback') this.inboundQuota.acked();
    if (f.op === 'ack' && (p?.kind === 'pub0' || p?.kind === 'puback' || p?.kind === 'pubrec')) keepRetained(p, f, this.writes);
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
    const o = this.options;
    // MQTT 3.1 has no Session Present flag: that byte is reserved (0) there.
    return connackPacket(o.version, o.stored !== undefined && o.version !== 3, o.retained !== undefined, o.assignedId, o.serverMaxPacket, o.serverReceiveMaximum, o.serverKeepAlive);
  }

  /**
   * The QoS `topic` is delivered at: the highest of the matching filters; undefined when none matches (`$` topics,
   * or only No Local filters for the client's `own` message).
   */
  qosFor(topic: string, own = false): QoS | undefined {
    return grantedQos(this.filters, topic, own ? this.filterOptions.noLocal : undefined);
  }

  /** Whether a message from `sender` is the session's own: this connection's, or an earlier one's (a resume replays those). */
  private own(sender: string): boolean {
    return sender === this.link?.id || this.earlier.includes(sender);
  }

  private publish(out: Outgoing, topic: string): Buffer {
    const own = this.filterOptions.noLocal.size > 0 && out.sender !== undefined && this.own(out.sender.id);
    const granted = this.qosFor(topic, own);
    if (granted === undefined) return NOTHING;
    if (this.reads.reading && this.reads.hold(out, topic)) return NOTHING;
    // At the lower of the publisher's QoS and the subscription's (MQTT-3.8.4: a QoS 0 publish is never upgraded).
    const qos = granted <= out.maxQos ? granted : out.maxQos;
    if (propertiesNow(deliveryOf(out), (out.frame as { ts: number }).ts) === null) return NOTHING; // expired while it waited (a resumed session, a slow subscriber)
    const f = this.positions ? (out.frame as { seq: number; epoch: string }) : undefined;
    // Once per connection, as live messages are: a resume of two filters matching one topic replays it for each.
    if (f && this.positions!.delivered(topic, f)) return NOTHING;
    // What it goes out with beyond its QoS (5.0 Retain As Published, Subscription Identifiers): asked only of a
    // session that has such options.
    const marks = this.filterOptions.marking ? this.filterOptions.marks(this.filters, topic, own, out.retain) : PLAIN;
    // The client's Receive Maximum is reached (or messages wait already): it waits for a PUBACK / PUBCOMP, in order.
    if (!this.cut && this.waiting.mustWait(qos)) return this.wait({ kind: 'live', out, topic, qos, marks, at: f && { seq: f.seq, epoch: f.epoch } });
    // QoS 1 and 2 take a packet id first: a message that cannot have one is not sent, and the position stays before
    // it, so a resume of the session delivers it. So does every message after it: the session is being cut.
    const pid = this.cut ? undefined : qos === 0 ? 0 : this.flights.packetId();
    if (pid === undefined) {
      // Too many messages unacknowledged: the client stopped acknowledging; that is a slow consumer.
      if (f) this.positions!.before(topic, f);
      return this.slowConsumer();
    }
    if (f) this.positions!.remember(topic, { seq: f.seq, epoch: f.epoch });
    return this.send(out, topic, qos, pid, marks);
  }

  /**
   * Live message `out` at `qos` with packet id `pid` (0 for QoS 0) and `marks`, now in flight; nothing when it does
   * not fit, or when its message expiry passed while it waited for the client's Receive Maximum.
   */
  private send(out: Outgoing, topic: string, qos: QoS, pid: number, marks: Marks): Buffer {
    const packet = this.fits(livePacket(out, topic, qos, pid, this.generateOptions, marks) ?? NOTHING);
    if (qos !== 0 && packet.length > 0) this.flights.inflight.set(pid, { qos, released: false, payload: out, topic, retain: marks.retain, ids: marks.ids });
    return packet;
  }

  /** Puts `w` to wait for the Receive Maximum, a live one's position counted now (a replay through another filter is not queued twice). */
  private wait(w: Waiting): Buffer {
    const at = w.kind === 'live' ? w.at && { topic: w.topic, p: w.at } : undefined;
    const added = this.waiting.add(w, this.flights.inflight.size);
    if (at) this.positions![added ? 'remember' : 'before'](at.topic, at.p);
    return added ? NOTHING : this.slowConsumer();
  }

  /** The session is cut as a slow consumer (once): nothing more is sent. */
  private slowConsumer(): Buffer {
    if (!this.cut) queueMicrotask(() => this.link?.signal({ type: 'SLOW_CONSUMER' }));
    this.cut = true;
    return NOTHING;
  }

  /**
   * `packet` as the client is sent it (a PUBLISH under its topic alias, when it allows them: aliases.ts), or nothing
   * when it is larger than the client said it takes (5.0 maximum packet size) [MQTT-3.1.2-25]. An alias whose first
   * packet is not sent is not the client's: one that would take the packet over the maximum is not used.
   */
  private fits(packet: Buffer): Buffer {
    const max = this.options.maxPacket;
    if (this.aliases && packet.length > 0) {
      const aliased = this.aliases.apply(packet);
      if (max === undefined || aliased.packet.length <= max) {
        if (aliased.assigned) this.aliases.sent(aliased.assigned);
        return aliased.packet;
      }
    }
    return max !== undefined && packet.length > max ? NOTHING : packet;
  }

  /** The engine's answer `f` as the packet answering the client (a QoS 0 publish's refusal, without an id, closes). */
  private reply(f: Answer): Buffer {
    return replyTo(f, this.pending, this.replying);
  }

  /**
   * A filter the engine took: held at its QoS, the engine life noted (persistent sessions), and the retained
   * messages it matches queued behind the SUBACK (after this flush: never push into a mailbox while it is written;
   * a shared store answers later: live messages of its topics written before the read is over are held, and
   * follow the retained ones).
   */
  private subscribed(filter: string, qos: QoS, ack: Answer, retained = true): void {
    this.filters.set(filter, qos);
    const life = (ack as { life?: unknown }).life;
    if (typeof life === 'string' && this.positions) this.positions.life = life;
    const store = this.options.retained;
    if (retained && store) this.reads.start(store, filter, qos, this.filterOptions.idsOf(filter));
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
    const packet = closingPacket(this.generateOptions.protocolVersion, this.connacked, code, reason, this.options.maxPacket);
    this.connacked = true;
    return packet ?? NOTHING;
  }
}

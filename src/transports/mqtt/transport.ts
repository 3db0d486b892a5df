// MQTT transport: a listener of its own (--mqtt-port) for MQTT 3.1.1 and 5.0 clients, on the same Connection actor as
// WebSocket and TCP. Before any actor exists: a connection slot, then the CONNECT packet (protocol, client id,
// credentials: the password carries the token when authentication is on, will topic), read and admitted in
// connect.ts. Then the socket's packets go through MqttSession to the connection's reader, and its writer's frames
// come back as MQTT packets (MqttWire); when the connection ends, its session is kept or released and its will
// published, at once or after its 5.0 delay (wills.ts).
import { createServer, type Server, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { Logger } from 'pino';
import { openConnection, type BrokerCore } from '../../actors/connection.js';
import type { Wire } from '../../actors/mailbox.js';
import { SocketWire } from '../socket-wire.js';
import type { ServerFrame } from '../../protocol/frames.js';
import type { Outgoing } from '../../protocol/outgoing.js';
import { CLOSE } from '../../protocol/errors.js';
import type { Link } from '../../actors/link.js';
import { nameError } from '../../protocol/frames.js';
import { PacketFramer, type FrameEvent } from './framer.js';
import { propertiesProblem } from './properties.js';
import { illFormedTopic } from './utf8.js';
import { CONNACK } from './codes.js';
import { ConnectReader, overKeepaliveLimit, type Accepted } from './connect.js';
import { expiryOf, SessionExpiry } from './expiry.js';
import { MqttSession } from './session.js';
import { willOf } from './payload.js';
import { Wills } from './wills.js';
import { MemoryRetainedStore, MemorySessionStore, RETAINED_MAX, type Position, type RetainedStore, type SessionStore, type TopicPositions } from './store.js';
import { filterMatches } from '../../protocol/topic.js';
import type { NodeCalls } from '../../engine/redis/calls.js';
import { Takeover } from './takeover.js';

/** The fixed header's size at most: a packet of --max-payload bytes of payload still fits with its topic. */
const HEADER_ALLOWANCE = 1024;
/** Topics read for the positions a persistent session keeps when its connection ends. */
const KEEP_TOPICS_MAX = 100_000;

export class MqttWire extends SocketWire implements Wire {
  readonly transport = 'mqtt' as const;
  // MQTT has no server ping: the client's keepalive is watched instead (the machine's keepalive region).
  readonly canPing = false;
  private ending = false;

  constructor(
    socket: Socket,
    private readonly session: MqttSession,
    /** How long the last packet may take to flush to a client that does not read before the socket is cut. */
    closeTimeoutMs = 5000,
  ) {
    super(socket, closeTimeoutMs);
  }

  encode(out: Outgoing): Buffer {
    return this.session.encode(out);
  }

  unsent(queue: readonly Outgoing[]): void {
    this.session.unsent(queue);
  }

  sending(frame: ServerFrame): void {
    this.session.answered(frame);
  }

  /** A refused CONNACK before acceptance, a DISCONNECT with its reason code (v5) after, then the end of the stream. */
  close(code: number, reason: string): void {
    if (this.ending) return;
    this.ending = true;
    if (this.socket.destroyed || !this.socket.writable) return void this.socket.destroy();
    this.endWith(this.session.closing(code, reason));
  }

  get isEnding(): boolean {
    return this.ending;
  }

  terminate(): void {
    this.ending = true;
    this.socket.destroy();
  }
}

/** Where sessions and retained messages are kept: this process's memory, or a store the cluster shares (broker.ts). */
export interface MqttStores {
  sessions: SessionStore;
  /** Undefined when --mqtt-retained-bytes is 0 (CONNACK then says retain is not available). */
  retained: RetainedStore | undefined;
  /** The positions a session kept now resumes after. */
  positions: TopicPositions;
}

/** The stores of one process, in its memory. */
export function memoryStores(core: BrokerCore): MqttStores {
  const { config, hub } = core;
  return {
    sessions: new MemorySessionStore(config.mqttSessions),
    retained: config.mqttRetainedBytes > 0 ? new MemoryRetainedStore(RETAINED_MAX, config.mqttRetainedBytes) : undefined,
    positions: (filters) => {
      const topics = hub.topics(KEEP_TOPICS_MAX).topics;
      const current = (filter: string): [string, Position][] =>
        topics.filter((t) => t.lastSeq !== null && t.lastSeq > 0 && t.epoch !== null && filterMatches(filter, t.topic)).map((t) => [t.topic, { seq: t.lastSeq!, epoch: t.epoch! }]);
      return Promise.resolve(new Map(filters.map((f) => [f, current(f)])));
    },
  };
}

export class MqttTransport {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly stores: MqttStores;
  /** Sessions being kept (or their hold released), by client id: a reconnect of that client waits for it before it takes its session. */
  private readonly keeping = new Map<string, Promise<void>>();
  /** This node's open connections holding a session, by owner: the name they hold (none: a client id that is no name). */
  private readonly opened = new Map<string, string | undefined>();
  /**
   * This node's connections whose client id is no broker name (`c<n>`, over 64 characters), by client id: the
   * takeover finds the others by name, these here (the cluster lists clients by name: another node asks this one
   * by client id, the node named by the session's hold).
   */
  private readonly unnamed = new Map<string, Link>();
  /** MQTT's client ids are unique: a new connection takes the id over from the connection holding it. */
  private readonly takeover: Takeover;
  /** Reads each new connection's CONNECT, and admits it (its client id claimed) or refuses it. */
  private readonly connects: ConnectReader;
  /** The wills of connections that ended, those waiting for their 5.0 delay among them. */
  readonly wills: Wills;

  constructor(
    private readonly core: BrokerCore,
    private readonly log: Logger,
    stores?: MqttStores,
    /** On a cluster: a client id held on another node is taken over there. */
    calls?: NodeCalls,
  ) {
    this.stores = stores ?? memoryStores(core);
    this.takeover = new Takeover(
      core.hub,
      core.config.closeTimeoutMs,
      (clientId) => this.keeping.get(clientId),
      calls,
      (clientId) => this.unnamed.get(clientId),
      (link) => link.grant !== undefined && this.connects.isAnonymous(link.grant),
    );
    this.wills = new Wills(core.hub, log, core.config.mqttSessions, calls, core.config.closeTimeoutMs + 2000);
    this.connects = new ConnectReader(core, log, this.stores.sessions, this.takeover, this.keeping, this.opened, this.wills);
    this.server = createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 }, (socket) => this.accept(socket));
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.log.error({ err }, 'mqtt server error'));
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  private get maxPacket(): number {
    return this.core.config.maxPayload + HEADER_ALLOWANCE;
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'mqtt socket error before connect'));
    const refusal = this.core.admission?.claim(socket);
    if (refusal) {
      // Before CONNECT is read the version is unknown: 3.1.1's "server unavailable" is what both versions read.
      socket.end(mqttPacket.generate({ cmd: 'connack', returnCode: CONNACK.unavailable.v4, sessionPresent: false }), () => socket.destroy());
      return;
    }
    const framer = new PacketFramer(this.maxPacket);
    // A throw while opening (a bug: what a client sends is checked before) ends this connection, never the process.
    this.connects.read(socket, framer)
      .then((accepted) => accepted && this.open(socket, accepted, framer))
      .catch((err: unknown) => {
        this.log.error({ err }, 'mqtt connect failed');
        socket.destroy();
      });
  }

  private open(socket: Socket, accepted: Accepted, framer: PacketFramer): void {
    const { connect, version, grant, user, meta, stored, owner, waitingWill, assigned } = accepted;
    const clientId = connect.clientId ?? '';
    // A will an earlier connection left waiting in the session: resumed before its delay passed, it is not sent
    // [MQTT-3.1.3-9]; not resumed (another user's session), that session has ended and the will goes now.
    if (waitingWill !== undefined) this.wills.settle(waitingWill, stored === undefined);
    // 3.1.1: clean session 0 keeps the session; 5.0: a session expiry interval over 0 does (clean start only resets).
    const expiry = new SessionExpiry(expiryOf(version, connect));
    const persistent = clientId.length > 0 && expiry.connected > 0;
    const maxPacket = version === 5 ? connect.properties?.maximumPacketSize : undefined;
    const noProblemInformation = version === 5 && connect.properties?.requestProblemInformation === false;
    // 5.0: the client's Receive Maximum bounds what is sent to it unacknowledged; what waits is charged as the mailbox is.
    const receiveMaximum = version === 5 ? connect.properties?.receiveMaximum : undefined;
    const { mailboxSize: maxInflight, mailboxBytes: maxWaitingBytes } = this.core.config;
    // --mqtt-max-keepalive: a 5.0 client asking a longer keepalive (or none) is told the limit (Server Keep Alive) and
    // must use it [MQTT-3.2.2-21]; a 3.1.1 one was refused (connect.ts).
    const maxKeepalive = this.core.config.mqttMaxKeepalive;
    const serverKeepAlive = version === 5 && overKeepaliveLimit(connect.keepalive, maxKeepalive) ? maxKeepalive : undefined;
    const keepalive = serverKeepAlive ?? connect.keepalive;
    const keepaliveMs = keepalive ? keepalive * 1500 : undefined;
    const session = new MqttSession({ version, clientId, assignedId: assigned, persistent, expiry, stored, maxInflight, maxWaitingBytes, receiveMaximum, retained: this.stores.retained, maxPacket, noProblemInformation, serverMaxPacket: this.maxPacket, serverReceiveMaximum: this.core.config.mqttReceiveMaximum, serverKeepAlive, topicAliasMaximum: version === 5 ? connect.properties?.topicAliasMaximum : undefined });
    const wire = new MqttWire(socket, session, this.core.config.closeTimeoutMs);
    const addr = `${socket.remoteAddress}:${socket.remotePort}`;
    const name = grant ? undefined : nameError(clientId) === null ? clientId : undefined;
    const { link, reader, actor } = openConnection(this.core, wire, addr, { name, grant }, meta, keepaliveMs);
    session.attach(link, reader);
    const will = willOf(connect);
    const parser = mqttPacket.parser({ protocolVersion: version === 5 ? 5 : 4 });
    let broken = false;
    const violation = (reason: string, code: number = CLOSE.protocolError) => {
      broken = true;
      this.core.faults?.note('info', { client: link.id, addr, reason }, 'mqtt protocol violation: closing');
      actor.send({ type: 'CLOSE', code, reason, cause: 'leave' });
    };
    const parsed: Packet[] = [];
    parser.on('packet', (p: Packet) => parsed.push(p));
    parser.on('error', (err: Error) => violation(`malformed packet: ${err.message}`.slice(0, 120)));
    const handle = (bytes: Buffer) => {
      try {
        parser.parse(bytes);
      } catch (err) {
        // The codec threw on bytes it could not read (it is lenient, not always safe): a malformed packet, not a fault.
        parsed.length = 0;
        return violation(`malformed packet: ${(err as Error).message}`.slice(0, 120));
      }
      for (const p of parsed.splice(0)) {
        if (broken) return;
        const malformed = propertiesProblem(p);
        if (malformed !== undefined) return violation(`malformed packet: ${malformed}`.slice(0, 120));
        // The codec decoded ill-formed UTF-8 as U+FFFD: a topic changed on the way, a malformed packet [MQTT-1.5.4-1].
        if (illFormedTopic(p, bytes, version === 5)) return violation('malformed packet: a topic name or filter of ill-formed UTF-8');
        const problem = session.inbound(p, bytes.length);
        if (problem) return violation(problem);
      }
    };
    const consume = (events: FrameEvent[]) => {
      for (const e of events) {
        if (broken || wire.isEnding) return;
        if (e.kind === 'too_large') return violation(`packet of ${e.size} bytes over --max-payload`, CLOSE.tooLarge);
        if (e.kind === 'malformed') return violation('malformed packet: bad remaining length');
        handle(e.packet);
      }
    };
    // A throw here would escape into a socket handler and take the process down: make it this actor's crash.
    const guarded = (events: FrameEvent[]) => {
      try {
        consume(events);
      } catch (error) {
        actor.send({ type: 'FAULT', error });
      }
    };
    socket.on('data', (chunk: Buffer) => {
      link.lastSeen = Date.now();
      guarded(framer.push(chunk));
    });
    socket.on('error', (err) => this.log.debug({ client: link.id, err: err.message }, 'mqtt socket error'));
    socket.on('close', (hadError) => {
      this.sockets.delete(socket);
      actor.send({ type: 'SOCKET_CLOSED', code: hadError ? CLOSE.abnormal : CLOSE.normal, reason: hadError ? 'connection reset' : 'closed by peer' });
    });
    // The connection's hold on its session ends with it: a persistent session is kept, with the positions its
    // filters' topics have now (what comes later is resumed), and its will if that waits for its delay (`delayed`),
    // published now if the session is not kept after all; otherwise the hold is released. Its expiry interval is
    // the one it ends with (a 5.0 DISCONNECT may have changed it: to 0, the session ends now).
    const keep = (delayed: boolean) => {
      if (owner === undefined) return;
      session.unserved(reader.unservedIds());
      const sessions = this.stores.sessions;
      const expiresAt = expiry.expiresAt(Date.now());
      const kept = (!persistent || expiry.seconds === 0
        ? sessions.release(clientId, owner, true)
        : this.stores
            .positions([...session.sessionFilters().keys()])
            .then(async (now) => {
              const s = session.keep((filter) => now.get(filter) ?? [], expiresAt);
              if (s) s.user = user; // whose it is: only the same user resumes it (an anonymous client's: anyone's without a token)
              if (s && delayed) s.will = owner;
              if (s && (await sessions.keep(clientId, owner, s))) return;
              // Not kept (a newer connection took the session over, or none are kept): its session has ended.
              if (delayed) this.wills.settle(owner, true);
              if (!s) return sessions.release(clientId, owner, true);
              this.log.info({ clientId }, 'mqtt session not kept: a newer connection of its client id holds it');
            })
            .catch((err: unknown) => {
              // What it resumed stays stored, without this connection's will: that waits for its delay all the same.
              this.log.warn({ err: (err as Error).message, clientId }, 'mqtt session not kept: the store (or the topics\' positions) could not be reached; what it resumed stays stored');
              return sessions.release(clientId, owner);
            })
      ).finally(() => this.keeping.get(clientId) === kept && this.keeping.delete(clientId));
      this.keeping.set(clientId, kept);
    };
    // The will is published once the connection is over, unless the client said DISCONNECT [MQTT-3.1.2-8]. A 5.0
    // will with a delay waits for it while the session lives on, at most until the session expires (it ends then);
    // true when it waits. Never after a crash: the session was not kept, and nothing could settle it.
    const willDelayS = version === 5 ? (connect.will?.properties?.willDelayInterval ?? 0) : 0;
    const endWill = (crashed = false): boolean => {
      if (!will || session.disconnected || !session.connacked) return false;
      const delayS = persistent && owner !== undefined && !crashed ? Math.min(willDelayS, expiry.seconds) : 0;
      if (delayS > 0) this.wills.later(owner!, will, link.id, delayS * 1000);
      else void this.wills.publish(will, link.id);
      return delayS > 0;
    };
    if (owner !== undefined) this.opened.set(owner, name ?? grant?.name);
    const unnamed = clientId.length > 0 && name === undefined && grant === undefined;
    if (unnamed) this.unnamed.set(clientId, link);
    const gone = () => {
      if (owner !== undefined) this.opened.delete(owner);
      if (unnamed && this.unnamed.get(clientId) === link) this.unnamed.delete(clientId);
    };
    actor.subscribe({
      complete: () => {
        gone();
        keep(endWill());
      },
      error: () => {
        gone();
        wire.close(CLOSE.internalError, 'internal error');
        if (owner !== undefined) void this.stores.sessions.release(clientId, owner, !persistent || expiry.seconds === 0);
        endWill(true);
      },
    });
    actor.start();
    session.resume();
    // What came behind CONNECT in its read: packets, or the failure that ended the framing there.
    guarded(accepted.rest);
    socket.resume();
  }

  close(): void {
    this.server.close();
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}


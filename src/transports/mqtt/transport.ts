// MQTT transport: a listener of its own (--mqtt-port) for MQTT 3.1.1 and 5.0 clients, on the same Connection actor as
// WebSocket and TCP. Before any actor exists: a connection slot, then the CONNECT packet (protocol, client id,
// credentials: the password carries the token when authentication is on, will topic). Then the socket's packets go
// through MqttSession to the connection's reader, and its writer's frames come back as MQTT packets (MqttWire).
import { createServer, type Server, type Socket } from 'node:net';
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet';
import type { Logger } from 'pino';
import { openConnection, type BrokerCore } from '../../actors/connection.js';
import type { Wire } from '../../actors/mailbox.js';
import { SocketWire } from '../socket-wire.js';
import type { ServerFrame } from '../../protocol/frames.js';
import type { Outgoing } from '../../protocol/outgoing.js';
import { CLOSE } from '../../protocol/errors.js';
import type { Link } from '../../actors/link.js';
import { nameError } from '../../protocol/frames.js';
import { topicError } from '../../protocol/topic.js';
import { AuthFailure, grantFromClaims } from '../../auth/tokens.js';
import { Grant } from '../../auth/grant.js';
import { ConfigError } from '../../config.js';
import { PacketFramer, type FrameEvent } from './framer.js';
import { connectVersion, firstPacket } from './first-packet.js';
import { propertiesProblem } from './properties.js';
import { CONNACK, type ConnackRefusal } from './codes.js';
import { admitThroughHook } from '../../hooks/connect.js';
import { MqttSession, type MqttVersion } from './session.js';
import { willOf } from './payload.js';
import { MemoryRetainedStore, MemorySessionStore, RETAINED_MAX, sessionFor, type Position, type RetainedStore, type SessionStore, type StoredSession, type TopicPositions } from './store.js';
import { filterMatches } from '../../protocol/topic.js';
import type { NodeCalls } from '../../engine/redis/calls.js';
import { Takeover } from './takeover.js';

/** Longest client id accepted (MQTT allows 65,535 bytes; a client id longer than a name is never one anyway). */
const CLIENT_ID_MAX = 256;
/** The fixed header's size at most: a packet of --max-payload bytes of payload still fits with its topic. */
const HEADER_ALLOWANCE = 1024;
/** Topics read for the positions a persistent session keeps when its connection ends. */
const KEEP_TOPICS_MAX = 100_000;
/** 5.0's session expiry interval that means "never". */
const NEVER = 0xffffffff;
/** How long a connection's session outlives it, in seconds (NEVER, or 0: it ends with the connection). */
const expiryOf = (version: MqttVersion, connect: { clean?: boolean; properties?: { sessionExpiryInterval?: number } }): number =>
  version === 5 ? (connect.properties?.sessionExpiryInterval ?? 0) : connect.clean === false ? NEVER : 0;
/** What makes a CONNECT malformed that the codec lets through: will QoS 3 [MQTT-3.1.2-14]; on 3.1.1 a password without a user name [MQTT-3.1.2-22]. */
const connectProblem = (packet: IConnectPacket, version: MqttVersion): string | undefined =>
  packet.will && (packet.will.qos as number) > 2
    ? 'will QoS 3'
    : version !== 5 && packet.password !== undefined && packet.username === undefined
      ? 'a password without a user name'
      : undefined;
/** How often a claim waiting for a hold of another node asks that node again to close its connection (a client id that is no name). */
const ASK_AGAIN_MS = 100;
/** Failed claims remembered at most (the oldest forgotten first: its hold is then waited out, bounded, as before). */
const FAILED_CLAIMS_MAX = 10_000;

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

/** What CONNECT established, before the connection joins. */
interface Accepted {
  connect: IConnectPacket;
  version: MqttVersion;
  grant: Grant | undefined;
  /** Whose persistent session it may resume and keep: the token's (or the backend's) name; undefined for an anonymous client. */
  user: string | undefined;
  /** What the application backend's connect hook attached (presence `meta`). */
  meta?: Record<string, unknown> | undefined;
  /** What arrived behind the CONNECT (whole packets, or the framing failure that ended them), for the connection's own reader. */
  rest: FrameEvent[];
  /** The session it resumes (clean session 0 / clean start 0 and one was kept). */
  stored: StoredSession | undefined;
  /** The connection's hold on its client id's session (store.ts), kept or released when it ends; none without a client id. */
  owner: string | undefined;
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
  /** Session owners of this node whose claim failed (the store did not answer): their holds end by release. */
  private readonly failedClaims = new Set<string>();
  /** MQTT's client ids are unique: a new connection takes the id over from the connection holding it. */
  private readonly takeover: Takeover;
  /** What clients without a token may do (--mqtt-anonymous-acl), as a grant without a name. */
  private readonly anonymous: Grant | undefined;
  /** The grants of this node's anonymous connections (named by their own client id, no user's). */
  private readonly anonymousGrants = new WeakSet<Grant>();

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
      (link) => link.grant !== undefined && this.anonymousGrants.has(link.grant),
    );
    this.anonymous = anonymousGrant(core.config.mqttAnonymousAcl);
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
    this.readConnect(socket, framer)
      .then((accepted) => accepted && this.open(socket, accepted, framer))
      .catch((err: unknown) => {
        this.log.error({ err }, 'mqtt connect failed');
        socket.destroy();
      });
  }

  /** Reads and checks CONNECT; resolves null after refusing (and ending) the connection. */
  private async readConnect(socket: Socket, framer: PacketFramer): Promise<Accepted | null> {
    const first = await firstPacket(socket, framer, this.core.config.idleMs);
    if (first === null) return void socket.destroy(), null;
    const { packet, rest } = first;
    if (packet.cmd !== 'connect') return void socket.destroy(), null; // the first packet must be CONNECT [MQTT-3.1.0-1]
    const version = connectVersion(packet);
    if (version === undefined) return this.refuse(socket, 4, 'badProtocol');
    const faults = this.core.faults;
    const malformed = propertiesProblem(packet) ?? connectProblem(packet, version);
    if (malformed !== undefined) {
      faults?.note('info', { addr: socket.remoteAddress, reason: malformed }, 'mqtt connect refused: malformed packet');
      return this.refuse(socket, version, 'malformed');
    }
    const clientId = packet.clientId ?? '';
    if (clientId.length > CLIENT_ID_MAX || (clientId.length === 0 && version !== 5 && packet.clean === false)) return this.refuse(socket, version, 'badClientId');
    const will = packet.will;
    if (will && topicError(will.topic) !== null) return this.refuse(socket, version, version === 5 ? 'badClientId' : 'notAuthorized');
    // Named after its own client id: no user (the name is the client's to choose, as without tokens).
    const anonymous = this.anonymous && new Grant({ ...this.anonymous, name: clientId });
    if (anonymous) this.anonymousGrants.add(anonymous);
    let grant: Grant | undefined = anonymous;
    const tokens = this.core.tokens;
    const token = packet.password?.toString('utf8');
    if (tokens && (token || !grant)) {
      if (!token) return this.refuse(socket, version, 'notAuthorized');
      const verified = await tokens.verify(token);
      if (verified instanceof AuthFailure) {
        faults?.note('info', { addr: socket.remoteAddress, reason: verified.message }, 'mqtt connect refused: unauthorized');
        return this.refuse(socket, version, 'badCredentials');
      }
      grant = verified;
    }
    if (will && grant && !grant.mayPublish(will.topic)) return this.refuse(socket, version, 'notAuthorized');
    if (socket.destroyed) return null;
    // The application backend's connect hook (docs/integration.md): it may refuse, or say who connects.
    const asked = grant?.name ?? (nameError(clientId) === null ? clientId : undefined);
    const hooked = await admitThroughHook(this.core.hooks, { transport: 'mqtt', addr: `${socket.remoteAddress}:${socket.remotePort}`, name: asked, topics: [], token: grant }, () => true);
    if (hooked && !hooked.ok) {
      faults?.note('info', { addr: socket.remoteAddress, status: hooked.status, reason: hooked.message }, 'mqtt connect refused by the connect hook');
      return this.refuse(socket, version, hooked.status === 503 ? 'unavailable' : hooked.status === 401 ? 'badCredentials' : 'notAuthorized');
    }
    if (hooked) grant = hooked.grant;
    // The will again, against the grant the backend gave (it may publish less than the token).
    if (will && grant && !grant.mayPublish(will.topic)) return this.refuse(socket, version, 'notAuthorized');
    if (socket.destroyed) return null;
    // MQTT's client id is unique: a new connection with one takes over the old connection (its will is published).
    const name = grant?.name ?? (nameError(clientId) === null ? clientId : undefined);
    // A client id that is no broker name (`c<n>`, too long): its connection on this node is found by client id.
    // An anonymous client never takes a user's name: a connection under a token (or the backend's grant) holding it,
    // on this node or another, is not taken over by a client that merely chose that client id (refused, as a token's
    // name held elsewhere is).
    const freeName = () =>
      name === undefined
        ? this.takeover.freeUnnamed(clientId)
        : this.takeover.freeName(name, clientId, grant !== undefined, grant !== undefined && grant === anonymous);
    const taken = await freeName();
    if (taken !== 'ok') return this.refuse(socket, version, taken);
    if (socket.destroyed) return null;
    const owner = clientId.length === 0 ? undefined : this.takeover.newOwner();
    const claim = await this.session(clientId, packet.clean === false, owner, freeName, name);
    if (claim === null) return this.refuse(socket, version, 'unavailable');
    // It waited for an earlier connection of this client id to end: that one may have held the name meanwhile.
    const again = claim.waited ? await freeName() : 'ok';
    // A resumed session that ends with this connection (5.0 expiry 0) is marked so now that it is accepted (a
    // refused CONNECT leaves it): a claim that overrides this hold, or its node's reaping, removes it. Refused only
    // when the mark surely was not made; one that may have been is an accepted connection's (its end drops it).
    const marked = again === 'ok' && !socket.destroyed && owner !== undefined && packet.clean === false && expiryOf(version, packet) === 0
      ? (await this.stores.sessions.markEnding(clientId, owner).catch(() => false)) !== false
      : true;
    if (again !== 'ok' || !marked || socket.destroyed) {
      if (owner !== undefined) void this.stores.sessions.release(clientId, owner);
      return again !== 'ok' ? this.refuse(socket, version, again) : marked ? null : this.refuse(socket, version, 'unavailable');
    }
    const user = grant === anonymous ? undefined : grant?.name;
    return { connect: packet, version, grant, user, meta: hooked?.ok ? hooked.meta : undefined, rest, stored: sessionFor(claim.session, grant, user), owner };
  }

  /**
   * Claims `clientId`'s session for the connection `owner`: the session it resumes (`resume`: clean session 0), after
   * the one its last connection is leaving behind was kept; otherwise what was kept is dropped. Another connection of
   * the client id still holding the session is waited for while its node is alive (this one too), at most the close
   * timeout plus 2 s: one ending (its session not kept yet, its name already freed), or one that connected at the
   * same time as this one (it claimed the session first, its name was not taken yet when this one freed it): that one
   * is taken over as soon as it holds its name (`free`), and keeps its session, which this claim then takes. A hold of
   * a node gone, or past that time, is overridden, and that connection's late keep refused. `waited`: the claim
   * waited. null: the store could not answer.
   */
  private async session(clientId: string, resume: boolean, owner: string | undefined, free: () => Promise<unknown>, name?: string): Promise<{ session: StoredSession | undefined; waited: boolean } | null> {
    if (owner === undefined) return { session: undefined, waited: false };
    await this.keeping.get(clientId);
    const deadline = Date.now() + this.core.config.closeTimeoutMs + 2000;
    // A clean session takes the hold at once: what an earlier connection would still keep is dropped anyway. Not
    // for a client id that is no name: its hold is what says which node may still have it open.
    let force = !resume && name !== undefined;
    let waited = false;
    /** When each hold's node was last asked to close its connection (asked again while the claim waits: that connection may not be open yet). */
    const asked = new Map<string, number>();
    try {
      for (;;) {
        const claim = await this.stores.sessions.take(clientId, owner, force, resume);
        if (claim.heldBy === undefined) return { session: resume ? claim.session : undefined, waited };
        waited = true;
        const late = Date.now() > deadline;
        // A holder that connected meanwhile is taken over: it keeps the session, ending its hold. One with a client
        // id that is no name, on another node, is found by its hold: its node is asked again while the claim waits
        // (at most every ASK_AGAIN_MS), since a holder that claimed at the same time may not be open yet when first asked.
        if (!late) await free();
        if (!late && name === undefined && Date.now() - (asked.get(claim.heldBy) ?? -Infinity) >= ASK_AGAIN_MS) {
          asked.set(claim.heldBy, Date.now());
          await this.takeover.freeHolder(claim.heldBy, clientId);
        }
        // An open connection of this node that `free` cannot take over (it holds no name, or another one) never
        // ends for this claim: its hold is overridden at once, as before.
        const local = this.opened.has(claim.heldBy) ? { name: this.opened.get(claim.heldBy) } : undefined;
        // Nor does the claim of a connection of this node that was refused because the store did not answer it.
        const unreachable = (local !== undefined && (local.name === undefined || local.name !== name)) || this.failedClaims.has(claim.heldBy);
        force = late || unreachable || !resume || !(await this.takeover.waitFor(claim.heldBy));
        if (late) this.log.warn({ clientId, heldBy: claim.heldBy }, 'mqtt session still held by an earlier connection after the close timeout: taken over');
        if (!force) await new Promise((resolve) => setTimeout(resolve, 10));
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message, clientId }, 'mqtt session store unavailable: connect refused');
      // The claim may have been made all the same (Redis took it and did not answer): its hold is ended once Redis
      // answers (the session stays stored: a resume's claim leaves it), and is no one's to wait for meanwhile.
      if (this.failedClaims.size >= FAILED_CLAIMS_MAX) this.failedClaims.delete(this.failedClaims.values().next().value!);
      this.failedClaims.add(owner);
      void this.stores.sessions.release(clientId, owner);
      return null;
    }
  }

  private refuse(socket: Socket, version: MqttVersion, why: ConnackRefusal): null {
    const code = CONNACK[why];
    const v4 = code.v4;
    // 3.1.1 has no code for every refusal (a malformed CONNECT): then the connection is closed without a CONNACK.
    if (version !== 5 && v4 === null) return void socket.destroy(), null;
    const packet = version === 5 || v4 === null ? { cmd: 'connack' as const, reasonCode: code.v5, sessionPresent: false } : { cmd: 'connack' as const, returnCode: v4, sessionPresent: false };
    if (!socket.destroyed) socket.end(mqttPacket.generate(packet, { protocolVersion: version === 5 ? 5 : 4 }), () => socket.destroy());
    return null;
  }

  private open(socket: Socket, accepted: Accepted, framer: PacketFramer): void {
    const { connect, version, grant, user, meta, stored, owner } = accepted;
    const clientId = connect.clientId ?? '';
    // 3.1.1: clean session 0 keeps the session; 5.0: a session expiry interval over 0 does (clean start only resets).
    const expiryS = expiryOf(version, connect);
    const persistent = clientId.length > 0 && expiryS > 0;
    const maxPacket = version === 5 ? connect.properties?.maximumPacketSize : undefined;
    const session = new MqttSession({ version, clientId, assignedId: clientId.length === 0, persistent, stored, maxInflight: this.core.config.mailboxSize, retained: this.stores.retained, maxPacket });
    const wire = new MqttWire(socket, session, this.core.config.closeTimeoutMs);
    const addr = `${socket.remoteAddress}:${socket.remotePort}`;
    const name = grant ? undefined : nameError(clientId) === null ? clientId : undefined;
    const keepaliveMs = connect.keepalive ? connect.keepalive * 1500 : undefined;
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
    // filters' topics have now (what comes later is resumed); otherwise the hold is released.
    const keep = () => {
      if (owner === undefined) return;
      session.unserved(reader.unservedIds());
      const sessions = this.stores.sessions;
      const expiresAt = expiryS === NEVER ? Infinity : Date.now() + expiryS * 1000;
      const kept = (!persistent
        ? sessions.release(clientId, owner, true)
        : this.stores
            .positions([...session.sessionFilters().keys()])
            .then(async (now) => {
              const s = session.keep((filter) => now.get(filter) ?? [], expiresAt);
              if (s) s.user = user; // whose it is: only the same user resumes it (an anonymous client's: anyone's without a token)
              if (!s) return sessions.release(clientId, owner, true);
              if (!(await sessions.keep(clientId, owner, s))) this.log.info({ clientId }, 'mqtt session not kept: a newer connection of its client id holds it');
            })
            .catch((err: unknown) => {
              this.log.warn({ err: (err as Error).message, clientId }, 'mqtt session not kept: the store (or the topics\' positions) could not be reached; what it resumed stays stored');
              return sessions.release(clientId, owner);
            })
      ).finally(() => this.keeping.get(clientId) === kept && this.keeping.delete(clientId));
      this.keeping.set(clientId, kept);
    };
    // The will is published once the connection is over, unless the client said DISCONNECT [MQTT-3.1.2-8].
    const publishWill = () => {
      if (!will || session.disconnected || !session.connacked) return;
      const hub = this.core.hub;
      hub.publishAsync(will.topic, will.data, undefined, will.qos).catch((err: unknown) =>
        this.log.error({ err, client: link.id }, 'mqtt will publish failed'),
      );
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
        keep();
        publishWill();
      },
      error: () => {
        gone();
        wire.close(CLOSE.internalError, 'internal error');
        if (owner !== undefined) void this.stores.sessions.release(clientId, owner, !persistent);
        publishWill();
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

/** The grant of clients without a token, from --mqtt-anonymous-acl (checked like a token's acl at start). */
function anonymousGrant(acl: string | undefined): Grant | undefined {
  if (acl === undefined) return undefined;
  const grant = grantFromClaims({ sub: 'anonymous', acl: JSON.parse(acl) as unknown });
  if (grant instanceof AuthFailure) throw new ConfigError(`--mqtt-anonymous-acl: ${grant.message.replace(/^token /, '')}`);
  return grant;
}


// The CONNECT of a new MQTT connection, read and checked before any actor exists: its protocol version, client id,
// credentials (the password carries the token when authentication is on, or the client is anonymous under
// --mqtt-anonymous-acl), will topic, and the application backend's connect hook. Then the client id is claimed: the
// connection holding it is taken over (takeover.ts), and the session it kept is claimed for this one (store.ts). A
// refused CONNECT is answered with a CONNACK saying why (when its version has a code for it) and the connection ended.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import mqttPacket, { type IConnectPacket } from 'mqtt-packet';
import type { Logger } from 'pino';
import type { BrokerCore } from '../../actors/connection.js';
import { nameError } from '../../protocol/frames.js';
import { topicError } from '../../protocol/topic.js';
import { AuthFailure, grantFromClaims } from '../../auth/tokens.js';
import { Grant } from '../../auth/grant.js';
import { ConfigError } from '../../config.js';
import type { FrameEvent, PacketFramer } from './framer.js';
import { connectVersion, firstPacket } from './first-packet.js';
import { propertiesProblem } from './properties.js';
import { illFormedConnect } from './utf8.js';
import { CONNACK, type ConnackRefusal } from './codes.js';
import { admitThroughHook } from '../../hooks/connect.js';
import { expiryOf } from './expiry.js';
import type { MqttVersion } from './session-options.js';
import { sessionFor, type SessionStore, type StoredSession } from './store.js';
import type { Takeover } from './takeover.js';
import type { Wills } from './wills.js';

/** Longest client id accepted (MQTT allows 65,535 bytes; a client id longer than a name is never one anyway). */
const CLIENT_ID_MAX = 256;
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

/** What CONNECT established, before the connection joins. */
export interface Accepted {
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
  /** The owner of the connection whose delayed will waits in the session it claimed to resume (wills.ts): settled once it opens. */
  waitingWill: string | undefined;
  /** 5.0: the client id the broker gave a CONNECT without one (`connect.clientId` holds it too). */
  assigned: string | undefined;
}

/**
 * Whether a CONNECT's keepalive (seconds; 0 or none: no keepalive) passes --mqtt-max-keepalive (`max`; 0: no limit):
 * a 5.0 client is then held to the limit (Server Keep Alive, transport.ts), a 3.1.1 one refused (below).
 */
export function overKeepaliveLimit(keepalive: number | undefined, max: number): boolean {
  return max > 0 && (!keepalive || keepalive > max);
}

/** Reads each new connection's CONNECT and admits it, or refuses it; the claims of this node's connections on their client ids' sessions. */
export class ConnectReader {
  /** Session owners of this node whose claim failed (the store did not answer): their holds end by release. */
  private readonly failedClaims = new Set<string>();
  /** What clients without a token may do (--mqtt-anonymous-acl), as a grant without a name. */
  private readonly anonymous: Grant | undefined;
  /** The grants of this node's anonymous connections (named by their own client id, no user's). */
  private readonly anonymousGrants = new WeakSet<Grant>();

  constructor(
    private readonly core: BrokerCore,
    private readonly log: Logger,
    private readonly sessions: SessionStore,
    /** MQTT's client ids are unique: a new connection takes the id over from the connection holding it. */
    private readonly takeover: Takeover,
    /** Sessions being kept (or their hold released), by client id: a reconnect of that client waits for it before it takes its session. */
    private readonly keeping: ReadonlyMap<string, Promise<void>>,
    /** This node's open connections holding a session, by owner: the name they hold (none: a client id that is no name). */
    private readonly opened: ReadonlyMap<string, string | undefined>,
    /** The wills waiting for their delay: one of a session a clean start ends goes now. */
    private readonly wills: Wills,
  ) {
    this.anonymous = anonymousGrant(core.config.mqttAnonymousAcl);
  }

  /** Whether `grant` is an anonymous connection's of this node (named by its own client id, no user): not a token's or the backend's. */
  isAnonymous(grant: Grant): boolean {
    return this.anonymousGrants.has(grant);
  }

  /** Reads and checks CONNECT; resolves null after refusing (and ending) the connection. */
  async read(socket: Socket, framer: PacketFramer): Promise<Accepted | null> {
    const first = await firstPacket(socket, framer, this.core.config.idleMs);
    if (first === null) return void socket.destroy(), null;
    const { packet, raw, rest } = first;
    if (packet.cmd !== 'connect') return void socket.destroy(), null; // the first packet must be CONNECT [MQTT-3.1.0-1]
    const version = connectVersion(packet);
    if (version === undefined) return this.refuse(socket, 4, 'badProtocol');
    const faults = this.core.faults;
    // A client id, will topic or user name of ill-formed UTF-8 (the codec put U+FFFD in its place) makes CONNECT
    // malformed [MQTT-1.5.4-1]: not a client, or a will, under a changed name.
    const illFormed = illFormedConnect(packet, raw, version === 5);
    const malformed = propertiesProblem(packet) ?? connectProblem(packet, version) ?? (illFormed && `a ${illFormed} of ill-formed UTF-8`);
    if (malformed !== undefined) {
      faults?.note('info', { addr: socket.remoteAddress, reason: malformed }, 'mqtt connect refused: malformed packet');
      return this.refuse(socket, version, 'malformed');
    }
    // A Receive Maximum of 0 is a protocol error (3.1.2.11.3): no message could ever be sent to that client.
    if (version === 5 && packet.properties?.receiveMaximum === 0) return this.refuse(socket, version, 'protocolError');
    if (version !== 5 && overKeepaliveLimit(packet.keepalive, this.core.config.mqttMaxKeepalive)) return this.refuse(socket, version, 'keepalive');
    let clientId = packet.clientId ?? '';
    if (clientId.length > CLIENT_ID_MAX || (clientId.length === 0 && version !== 5 && packet.clean === false)) return this.refuse(socket, version, 'badClientId');
    // 5.0: an empty client id is given a unique one, and the CONNECT is then processed as if the client had sent it
    // [MQTT-3.1.3-6, -7]: it names the connection and keeps its session (session expiry above 0) for a reconnect that
    // sends it. CONNACK says it (Assigned Client Identifier).
    const assigned = clientId.length === 0 && version === 5 ? `mqtt-${randomBytes(9).toString('hex')}` : undefined;
    if (assigned !== undefined) clientId = packet.clientId = assigned;
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
    // MQTT's client id is unique: a new connection with one takes over the old connection (its will is published, or
    // with a 5.0 will delay left waiting in the session it keeps, settled by the claim below).
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
    // A clean start ended the session it claimed, whatever becomes of this CONNECT: a will waiting in it goes now.
    if (packet.clean !== false && claim.will !== undefined) this.wills.settle(claim.will, true);
    // It waited for an earlier connection of this client id to end: that one may have held the name meanwhile.
    const again = claim.waited ? await freeName() : 'ok';
    // A resumed session that ends with this connection (5.0 expiry 0) is marked so now that it is accepted (a
    // refused CONNECT leaves it): a claim that overrides this hold, or its node's reaping, removes it. Refused only
    // when the mark surely was not made; one that may have been is an accepted connection's (its end drops it).
    const marked = again === 'ok' && !socket.destroyed && owner !== undefined && packet.clean === false && expiryOf(version, packet) === 0
      ? (await this.sessions.markEnding(clientId, owner).catch(() => false)) !== false
      : true;
    if (again !== 'ok' || !marked || socket.destroyed) {
      if (owner !== undefined) void this.sessions.release(clientId, owner);
      return again !== 'ok' ? this.refuse(socket, version, again) : marked ? null : this.refuse(socket, version, 'unavailable');
    }
    const user = grant === anonymous ? undefined : grant?.name;
    const waitingWill = packet.clean === false ? claim.will : undefined;
    return { connect: packet, version, grant, user, meta: hooked?.ok ? hooked.meta : undefined, rest, stored: sessionFor(claim.session, grant, user), owner, waitingWill, assigned };
  }

  /**
   * Claims `clientId`'s session for the connection `owner`: the session it resumes (`resume`: clean session 0), after
   * the one its last connection is leaving behind was kept; otherwise what was kept is dropped. Another connection of
   * the client id still holding the session is waited for while its node is alive (this one too), at most the close
   * timeout plus 2 s: one ending (its session not kept yet, its name already freed), or one that connected at the
   * same time as this one (it claimed the session first, its name was not taken yet when this one freed it): that one
   * is taken over as soon as it holds its name (`free`), and keeps its session, which this claim then takes. A hold of
   * a node gone, or past that time, is overridden, and that connection's late keep refused. `waited`: the claim
   * waited. `will`: the owner whose delayed will waits in what was kept (resumed or dropped). null: the store could
   * not answer.
   */
  private async session(clientId: string, resume: boolean, owner: string | undefined, free: () => Promise<unknown>, name?: string): Promise<{ session: StoredSession | undefined; waited: boolean; will?: string | undefined } | null> {
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
        const claim = await this.sessions.take(clientId, owner, force, resume);
        if (claim.heldBy === undefined) return { session: resume ? claim.session : undefined, waited, will: claim.session?.will };
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
      void this.sessions.release(clientId, owner);
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
}

/** The grant of clients without a token, from --mqtt-anonymous-acl (checked like a token's acl at start). */
function anonymousGrant(acl: string | undefined): Grant | undefined {
  if (acl === undefined) return undefined;
  const grant = grantFromClaims({ sub: 'anonymous', acl: JSON.parse(acl) as unknown });
  if (grant instanceof AuthFailure) throw new ConfigError(`--mqtt-anonymous-acl: ${grant.message.replace(/^token /, '')}`);
  return grant;
}

// openConnection: what every transport does with a new socket — a Link, its reader, and a connection actor.
// The actor runs in an actor system shared by a group of connections (see ActorTree); the supervisor hears of its end
// through the group (ConnectionEnds).
import type { AnyActorRef } from 'xstate';
import type { Config } from '../config.js';
import type { Engine, JoinRequest } from '../engine/engine.js';
import { connectionMachine, ConnectionEnv, tokenDeadline, type CloseIntent, type ConnectionActor, type ConnectionTiming } from './connection.machine.js';
import type { SupervisorActor } from './supervisor.machine.js';
import type { ActorTree, ChildEnd } from './tree.js';
import { Link } from './link.js';
import type { MailboxLimits, Wire } from './mailbox.js';
import { FrameReader, type ReaderShared } from './reader.js';
import { TokenBucket, type RateLimits } from '../engine/bucket.js';
import type { Admission } from './admission.js';
import type { TokenVerifier } from '../auth/tokens.js';
import type { Logger } from 'pino';
import type { StallClock } from '../engine/stalls.js';
import type { ClientFaults } from '../log.js';
import { CLOSE } from '../protocol/errors.js';
import type { Hooks } from '../hooks/hooks.js';
import type { ClientEvents, CloseInfo } from '../hooks/events.js';

export interface BrokerCore {
  config: Config;
  hub: Engine<Link>;
  supervisor: SupervisorActor;
  /** The supervisor and its connection actors, for inspection. */
  actors: ActorTree;
  /** Connection slots (total and per IP), shared by every transport; absent = unlimited. */
  admission?: Admission;
  /** Verifies client tokens; absent or null = authentication off. */
  tokens?: TokenVerifier | null;
  /** Where the broker's own faults are logged. */
  log?: Logger;
  /** Where clients' faults (refusals, protocol violations, floods) are logged: throttled, never with a stack. */
  faults?: ClientFaults;
  /** How long the event loop was blocked: rate buckets credit it (the broker's stalls are not the client's frames). */
  stalls?: StallClock;
  /** The application backend's hooks (--hook-url); absent = none. */
  hooks?: Hooks | undefined;
  /** Webhook events about connections (--hook-url with `events` in --hooks); absent = none. */
  events?: ClientEvents | undefined;
}

/** Refused frames are counted per window of this length when deciding a client is flooding. */
export const RATE_WINDOW_MS = 10_000;

export interface OpenConnection {
  link: Link;
  reader: FrameReader;
  actor: ConnectionActor;
}

// One timing and one limits object per configuration, shared by every connection (per-connection memory).
const timings = new WeakMap<Config, ConnectionTiming>();
const rateLimits = new WeakMap<Config, RateLimits>();
const mailboxLimits = new WeakMap<Config, MailboxLimits>();

function timingOf(config: Config): ConnectionTiming {
  let t = timings.get(config);
  if (!t) {
    t = { heartbeatMs: config.heartbeatMs, idleMs: config.idleMs, idleGraceMs: config.idleGraceMs, closeTimeoutMs: config.closeTimeoutMs, tokenGraceMs: config.tokenGraceMs };
    timings.set(config, t);
  }
  return t;
}

function mailboxLimitsOf(config: Config): MailboxLimits {
  let m = mailboxLimits.get(config);
  if (!m) {
    m = { messages: config.mailboxSize, bytes: config.mailboxBytes };
    mailboxLimits.set(config, m);
  }
  return m;
}

function rateLimitsOf(config: Config): RateLimits {
  let r = rateLimits.get(config);
  if (!r) {
    r = { rate: config.rate, burst: config.rateBurst, strikes: config.rateStrikes, windowMs: RATE_WINDOW_MS };
    rateLimits.set(config, r);
  }
  return r;
}

/** A connection that ended or crashed without a close of its own (shown to webhooks). */
const FAULT_CLOSE: CloseInfo = Object.freeze({ code: CLOSE.internalError, reason: 'internal error', cause: 'fault' });

/**
 * What happens when a connection's actor ends: the supervisor hears it (typed events, since connection actors are no
 * children of its), webhooks hear of the disconnect, and a crash closes the socket (1011) even before the supervisor
 * registered the link. One per supervisor, shared by its connections: no subscription or closure per connection.
 */
class ConnectionEnds implements ChildEnd {
  constructor(
    private readonly supervisor: SupervisorActor,
    private readonly events: BrokerCore['events'],
  ) {}

  completed(child: AnyActorRef, output: unknown): void {
    const { link } = (child as ConnectionActor).getSnapshot().context;
    this.supervisor.send({ type: 'CONNECTION_CLOSED', link, close: output as CloseIntent });
    this.events?.disconnected(link, output as CloseIntent);
  }

  failed(child: AnyActorRef, error: unknown): void {
    const { link } = (child as ConnectionActor).getSnapshot().context;
    this.supervisor.send({ type: 'CONNECTION_CRASHED', link, error });
    this.events?.disconnected(link, FAULT_CLOSE);
    link.wire.close(CLOSE.internalError, 'internal error');
  }
}

const ends = new WeakMap<SupervisorActor, ConnectionEnds>();
const envs = new WeakMap<BrokerCore, ConnectionEnv>();
const readerParts = new WeakMap<BrokerCore, ReaderShared>();

/** What the broker's readers share (one object per core). */
function readerSharedOf(core: BrokerCore): ReaderShared {
  let r = readerParts.get(core);
  if (!r) {
    r = { engine: core.hub, log: core.log, faults: core.faults, tokens: core.tokens, hooks: core.hooks };
    readerParts.set(core, r);
  }
  return r;
}

/** What the broker's connection actors share (one object per core, so each actor's input and context stay small). */
function envOf(core: BrokerCore): ConnectionEnv {
  let e = envs.get(core);
  if (!e) {
    e = new ConnectionEnv(core.supervisor, core.hub, timingOf(core.config), core.stalls);
    envs.set(core, e);
  }
  return e;
}

function endsOf(core: BrokerCore): ConnectionEnds {
  let e = ends.get(core.supervisor);
  if (!e) {
    e = new ConnectionEnds(core.supervisor, core.events);
    ends.set(core.supervisor, e);
  }
  return e;
}

/** Creates the link and actor for a socket; call `actor.start()` once the socket's listeners are attached. */
/** `meta`: the connect hook's, shown in presence. `keepaliveMs`: silence after which the peer is gone (MQTT's keepalive × 1.5); absent = none. */
export function openConnection(core: BrokerCore, wire: Wire, addr: string, request: JoinRequest, meta?: Record<string, unknown>, keepaliveMs?: number): OpenConnection {
  const { config } = core;
  const events = core.events;
  const link = new Link({ addr, wire, mailboxLimits: mailboxLimitsOf(config), slowConsumer: config.slowConsumer, id: core.hub.nextSessionId(), observer: events });
  link.meta = meta; // the connect hook's, shown in presence from the join on
  const env = envOf(core);
  env.willJoin(link, request); // handed to the supervisor when the actor starts (register), not kept in its input
  const actor = core.actors.create(
    connectionMachine,
    {
      id: link.id,
      input: { link, env, keepaliveMs, tokenExpiresAt: tokenDeadline(request.grant) },
    },
    endsOf(core),
  );
  link.actor = actor;
  const rate = new TokenBucket(rateLimitsOf(config), Date.now, core.stalls);
  link.rate = rate;
  return { link, reader: new FrameReader(link, readerSharedOf(core), rate), actor };
}

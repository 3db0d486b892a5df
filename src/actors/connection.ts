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
import type { TokenVerifier } from '../auth/verifier.js';
import type { Logger } from 'pino';
import type { HeldStallClock } from '../engine/stalls.js';
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
  /** How long the event loop was blocked: rate buckets credit it (the broker's stalls are not the client's frames); each connection holds it while it runs. */
  stalls?: HeldStallClock;
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

/** `build(key)` once per key, kept while the key lives: one shared object per configuration or broker (per-connection memory). */
function oncePer<K extends object, V>(build: (key: K) => V): (key: K) => V {
  const made = new WeakMap<K, V>();
  return (key) => {
    let value = made.get(key);
    if (value === undefined) made.set(key, (value = build(key)));
    return value;
  };
}

// One timing and one limits object per configuration, shared by every connection.
const timingOf = oncePer((config: Config): ConnectionTiming => ({
  heartbeatMs: config.heartbeatMs,
  idleMs: config.idleMs,
  idleGraceMs: config.idleGraceMs,
  closeTimeoutMs: config.closeTimeoutMs,
  tokenGraceMs: config.tokenGraceMs,
}));
const mailboxLimitsOf = oncePer((config: Config): MailboxLimits => ({ messages: config.mailboxSize, bytes: config.mailboxBytes }));
const rateLimitsOf = oncePer((config: Config): RateLimits => ({ rate: config.rate, burst: config.rateBurst, strikes: config.rateStrikes, windowMs: RATE_WINDOW_MS }));

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
    const { link, env } = (child as ConnectionActor).getSnapshot().context;
    env.stalls?.release();
    this.supervisor.send({ type: 'CONNECTION_CLOSED', link, close: output as CloseIntent });
    this.events?.disconnected(link, output as CloseIntent);
  }

  failed(child: AnyActorRef, error: unknown): void {
    const { link, env } = (child as ConnectionActor).getSnapshot().context;
    env.stalls?.release();
    this.supervisor.send({ type: 'CONNECTION_CRASHED', link, error });
    this.events?.disconnected(link, FAULT_CLOSE);
    link.wire.close(CLOSE.internalError, 'internal error');
  }
}

/** What the broker's readers share (one object per core). */
const readerSharedOf = oncePer((core: BrokerCore): ReaderShared => ({ engine: core.hub, log: core.log, faults: core.faults, tokens: core.tokens, hooks: core.hooks }));

/** What the broker's connection actors share (one object per core, so each actor's input and context stay small). */
const envOf = oncePer((core: BrokerCore) => new ConnectionEnv(core.supervisor, core.hub, timingOf(core.config), core.stalls));

// One per supervisor (what its connections' ends tell), built with its core's events.
const endsBySupervisor = new WeakMap<SupervisorActor, ConnectionEnds>();
function endsOf(core: BrokerCore): ConnectionEnds {
  let e = endsBySupervisor.get(core.supervisor);
  if (!e) endsBySupervisor.set(core.supervisor, (e = new ConnectionEnds(core.supervisor, core.events)));
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
  env.stalls?.hold(); // released when the actor ends (ConnectionEnds); before the bucket reads the clock
  const rate = new TokenBucket(rateLimitsOf(config), Date.now, core.stalls);
  link.rate = rate;
  return { link, reader: new FrameReader(link, readerSharedOf(core), rate), actor };
}

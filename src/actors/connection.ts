// openConnection: what every transport does with a new socket — a Link, its reader, and a connection actor.
// The actor runs in an actor system of its own (see ActorTree); the supervisor hears of its end from here.
import { createActor } from 'xstate';
import type { Config } from '../config.js';
import type { Engine, JoinRequest } from '../engine/engine.js';
import { connectionMachine, type ConnectionActor, type ConnectionTiming } from './connection.machine.js';
import type { SupervisorActor } from './supervisor.machine.js';
import type { ActorTree } from './tree.js';
import { Link } from './link.js';
import type { Wire } from './mailbox.js';
import { FrameReader } from './reader.js';
import { TokenBucket, type RateLimits } from '../engine/bucket.js';
import type { Admission } from './admission.js';
import type { TokenVerifier } from '../auth/tokens.js';
import type { Logger } from 'pino';
import type { StallClock } from '../engine/stalls.js';
import type { ClientFaults } from '../log.js';
import { CLOSE } from '../protocol/errors.js';
import type { Hooks } from '../hooks/hooks.js';
import type { ClientEvents } from '../hooks/events.js';

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

function timingOf(config: Config): ConnectionTiming {
  let t = timings.get(config);
  if (!t) {
    t = { heartbeatMs: config.heartbeatMs, idleMs: config.idleMs, idleGraceMs: config.idleGraceMs, closeTimeoutMs: config.closeTimeoutMs, tokenGraceMs: config.tokenGraceMs };
    timings.set(config, t);
  }
  return t;
}

function rateLimitsOf(config: Config): RateLimits {
  let r = rateLimits.get(config);
  if (!r) {
    r = { rate: config.rate, burst: config.rateBurst, strikes: config.rateStrikes, windowMs: RATE_WINDOW_MS };
    rateLimits.set(config, r);
  }
  return r;
}

/** Creates the link and actor for a socket; call `actor.start()` once the socket's listeners are attached. */
/** `meta`: the connect hook's, shown in presence. `keepaliveMs`: silence after which the peer is gone (MQTT's keepalive × 1.5); absent = none. */
export function openConnection(core: BrokerCore, wire: Wire, addr: string, request: JoinRequest, meta?: Record<string, unknown>, keepaliveMs?: number): OpenConnection {
  const { config } = core;
  const events = core.events;
  const link = new Link({ addr, wire, mailboxSize: config.mailboxSize, mailboxBytes: config.mailboxBytes, slowConsumer: config.slowConsumer, id: core.hub.nextSessionId?.(), observer: events });
  link.meta = meta; // the connect hook's, shown in presence from the join on
  const actor = createActor(connectionMachine, {
    id: link.id,
    input: {
      link,
      supervisor: core.supervisor,
      engine: core.hub,
      request,
      timing: timingOf(config),
      closeWhenIdle: core.hub.closesWhenIdle(link),
      stalls: core.stalls,
      keepaliveMs,
    },
  });
  link.actor = actor;
  core.actors.adopt(actor);
  actor.subscribe({
    complete: () => {
      const snapshot = actor.getSnapshot();
      if (snapshot.status === 'done') core.supervisor.send({ type: 'CONNECTION_CLOSED', link, close: snapshot.output });
      events?.disconnected(link, snapshot.status === 'done' ? snapshot.output : { code: CLOSE.internalError, reason: 'internal error', cause: 'fault' });
    },
    error: (error) => {
      core.supervisor.send({ type: 'CONNECTION_CRASHED', link, error });
      events?.disconnected(link, { code: CLOSE.internalError, reason: 'internal error', cause: 'fault' });
    },
  });
  // Connected once admitted (the supervisor joined it and the machine is open).
  if (events) actor.subscribe({ next: () => link.isOpen && events.connected(link), error: () => undefined });
  const rate = new TokenBucket(rateLimitsOf(config), Date.now, core.stalls);
  link.rate = rate;
  return { link, reader: new FrameReader(link, core.hub, rate, core.log, core.faults, core.tokens, core.hooks), actor };
}

// ConnectionMachine: the handler role of one connection. It owns lifecycle and control
// (connecting → online ⇄ idle → closing → closed, heartbeat beside them). The reader hands frames to the engine
// itself and tells the machine only what changes its state (quit, the first frame after idle); deliveries and
// replies go through the writer (mailbox), never through the machine.
import { assertEvent, assign, enqueueActions, sendTo, setup, type ActorRefFrom, type AnyActorRef } from 'xstate';
import type { Engine, JoinRequest } from '../engine/engine.js';
import type { Link } from './link.js';
import type { CloseIntent, ConnectionEvent } from './connection.events.js';

export type { CloseIntent, ConnectionEvent };
import { CLOSE, ProtocolError } from '../protocol/errors.js';
import type { HeldStallClock } from '../engine/stalls.js';

export interface ConnectionTiming {
  heartbeatMs: number;
  idleMs: number;
  idleGraceMs: number;
  closeTimeoutMs: number;
  /** How long a connection whose token expired may send a fresh one (`auth`) before it is closed with 4003. */
  tokenGraceMs: number;
}

/** The longest delay a timer takes (setTimeout's limit, ~24.8 days): a token expiring later is checked again then. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * What every connection of a broker shares: one object per broker (see openConnection), so a connection's input and
 * context carry a pointer to it instead of a copy of each field (per-connection memory, issue 21).
 */
export class ConnectionEnv {
  constructor(
    readonly supervisor: AnyActorRef,
    /** Told when the connection goes idle and comes back (presence); never per frame. */
    readonly engine: Engine<Link>,
    readonly timing: ConnectionTiming,
    /** The broker's stall clock: a pong that may be sitting unread behind a stall is not overdue. */
    readonly stalls?: HeldStallClock | undefined,
    /**
     * The time the machine's timers and guards read (ms since 1970; default Date.now), compared with the link's
     * lastActivity and lastSeen: a test runs the machine on xstate's SimulatedClock and passes its now().
     */
    readonly now: () => number = Date.now,
  ) {}

  /**
   * Join requests of connections not registered yet: the actor's first action (register) takes its own and hands it to
   * the supervisor. Kept here for those few moments, not in the actor's input, which xstate keeps for the actor's life.
   */
  private readonly requests = new WeakMap<Link, JoinRequest>();

  /** `link` will ask to join with `request` when its actor starts. */
  willJoin(link: Link, request: JoinRequest): void {
    this.requests.set(link, request);
  }

  /** The request `link` joins with (an empty one when none was given: the engine names the client). */
  takeRequest(link: Link): JoinRequest {
    const request = this.requests.get(link) ?? NO_REQUEST;
    this.requests.delete(link);
    return request;
  }

  /** Inspection shows the shared environment by name, not its object graph (the engine, the supervisor). */
  toJSON(): string {
    return 'broker';
  }
}

/** What one connection's actor starts from (kept by xstate for the actor's life: only what the machine reads). */
export interface ConnectionInput {
  link: Link;
  env: ConnectionEnv;
  /** Silence after which the peer counts as gone (MQTT: 1.5 × the client's keepalive); undefined = none. */
  keepaliveMs?: number | undefined;
  /** When its token expires (ms since 1970; `tokenDeadline`), or undefined: no token, or no `exp`. */
  tokenExpiresAt?: number | undefined;
}

/** When a connection with this grant must present a fresh token (ms since 1970), or undefined: never. */
export function tokenDeadline(grant: { exp?: number | undefined } | undefined): number | undefined {
  return grant?.exp === undefined ? undefined : grant.exp * 1000;
}

const NO_REQUEST: JoinRequest = Object.freeze({});

// Whether an idle connection is closed (4000) is the engine's rule for its transport (--idle-close), asked when the
// grace ends: nothing per connection.
interface ConnectionContext {
  link: Link;
  env: ConnectionEnv;
  keepaliveMs: number | undefined;
  awaitingPong: boolean;
  /**
   * When the last ping went out (when the connection opened, before the first): the next is due heartbeatMs after it,
   * and any inbound traffic after it (a pong, a frame) shows the peer is alive.
   */
  pingSentAt: number;
  /** The stall clock when it went out. */
  pingStallMark: number;
  close: CloseIntent;
  /** When the connection's token expires (ms since 1970; from its `exp`), or undefined: no token, or no `exp`. */
  tokenExpiresAt: number | undefined;
}

const now = (context: ConnectionContext): number => context.env.now();

/** A ping is due heartbeatMs after the last (after the connection opened, for the first). */
const pingDue = (context: ConnectionContext): boolean => now(context) >= context.pingSentAt + context.env.timing.heartbeatMs;

/** Online, and no application frame for idleMs (pongs are not the client's activity). */
const idleDue = (context: ConnectionContext): boolean => !context.link.isIdle && now(context) - context.link.lastActivity >= context.env.timing.idleMs;

/**
 * When the activity rules next have something to decide: an online connection goes idle idleMs after its last
 * application frame; an idle one (or one going idle now) is closed idleGraceMs later where --idle-close applies to it,
 * and otherwise waits for a frame (ACTIVE), with nothing to decide until then.
 */
function activityDue(context: ConnectionContext): number {
  const { link, env } = context;
  const idleAt = link.lastActivity + env.timing.idleMs;
  if (idleAt > now(context)) return idleAt;
  return env.engine.closesWhenIdle(link) ? idleAt + env.timing.idleGraceMs : Infinity;
}

/** The close intent until a real one is set; shared by every connection (assign replaces it, never mutates it). */
const NOT_CLOSED: CloseIntent = Object.freeze({ code: CLOSE.abnormal, reason: 'closed', cause: 'leave' });

export const connectionMachine = setup({
  types: {
    context: {} as ConnectionContext,
    events: {} as ConnectionEvent,
    input: {} as ConnectionInput,
    output: {} as CloseIntent,
  },
  delays: {
    // One timer for the heartbeat and the activity rules (one pending delayed event per connection, not two): the
    // earlier of the next ping and activityDue. Derived from lastActivity, so activity never re-arms it.
    nextCheck: ({ context }) =>
      Math.min(MAX_TIMER_MS, Math.max(0, Math.min(context.pingSentAt + context.env.timing.heartbeatMs, activityDue(context)) - now(context))),
    closeTimeout: ({ context }) => context.env.timing.closeTimeoutMs,
    tokenExpiry: ({ context }) => Math.min(MAX_TIMER_MS, Math.max(0, (context.tokenExpiresAt ?? 0) - now(context))),
    tokenGrace: ({ context }) => context.env.timing.tokenGraceMs,
    // Derived from lastSeen as nextCheck is from lastActivity: traffic never re-arms a timer, the guard re-enters instead.
    keepaliveDeadline: ({ context }) => Math.max(0, context.link.lastSeen + (context.keepaliveMs ?? 0) - now(context)),
  },
  guards: {
    // The next ping is due and nothing was heard since the last. Not when the loop was blocked since that ping: its pong
    // may be read only now (the broker's stall, not the peer's).
    pongOverdue: ({ context }) =>
      pingDue(context) &&
      context.awaitingPong &&
      context.link.lastSeen < context.pingSentAt &&
      (context.env.stalls?.blockedMs() ?? 0) === context.pingStallMark,
    idleGraceOver: ({ context }) =>
      context.link.isIdle &&
      now(context) >= context.link.lastActivity + context.env.timing.idleMs + context.env.timing.idleGraceMs &&
      context.env.engine.closesWhenIdle(context.link),
    tokenLasts: ({ context }) => context.tokenExpiresAt === undefined,
    tokenStillValid: ({ context }) => context.tokenExpiresAt !== undefined && context.tokenExpiresAt > now(context),
    hasKeepalive: ({ context }) => context.keepaliveMs !== undefined && context.keepaliveMs > 0,
    heardWithinKeepalive: ({ context }) => now(context) - context.link.lastSeen < (context.keepaliveMs ?? 0),
  },
  actions: {
    register: sendTo(
      ({ context }) => context.env.supervisor,
      ({ context }) => ({ type: 'CONNECT', link: context.link, request: context.env.takeRequest(context.link) }),
    ),
    markOpen: ({ context }) => {
      context.link.isOpen = true;
    },
    markNotOpen: ({ context }) => {
      context.link.isOpen = false;
      context.link.isIdle = false;
    },
    startBeat: assign({ pingSentAt: ({ context }) => now(context) }),
    // Idle and back: lifecycle news for the presence watchers (the engine tells them).
    reportIdle: ({ context }) => {
      context.link.isIdle = true;
      context.env.engine.activity(context.link, 'idle');
    },
    reportActive: ({ context }) => {
      context.link.isIdle = false;
      context.env.engine.activity(context.link, 'active');
    },
    // What the one timer found due: a ping (its answer is checked at the next), idleness (the activity region hears it).
    check: enqueueActions(({ context, enqueue }) => {
      if (pingDue(context)) {
        enqueue.assign({
          awaitingPong: context.link.wire.canPing,
          pingSentAt: now(context),
          pingStallMark: context.env.stalls?.blockedMs() ?? 0,
        });
        enqueue(() => context.link.wire.ping());
      }
      if (idleDue(context)) enqueue.raise({ type: 'IDLE_TIMEOUT' });
    }),
    recordPong: assign({ awaitingPong: false }),
    setClose: assign({ close: (_, params: CloseIntent) => params }),
    setCloseFromEvent: assign({
      close: ({ event }) => {
        assertEvent(event, ['CLOSE', 'REJECTED']);
        return { code: event.code, reason: event.reason, cause: event.cause };
      },
    }),
    setClosedByPeer: assign({
      close: ({ event }) => {
        assertEvent(event, 'SOCKET_CLOSED');
        return { code: event.code, reason: event.reason || 'closed by peer', cause: 'leave' as const };
      },
    }),
    discardMailbox: ({ context }) => context.link.mailbox.discard(),
    // Flush what is queued (acknowledged messages reach the client), then the close frame.
    startClose: ({ context }) => {
      const { link, close } = context;
      link.mailbox.sealAndFlush(() => link.wire.close(close.code, close.reason));
    },
    terminateSocket: ({ context }) => context.link.wire.terminate(),
    setTokenExpiry: assign({
      tokenExpiresAt: ({ event }) => {
        assertEvent(event, 'TOKEN_REFRESHED');
        return event.exp === undefined ? undefined : event.exp * 1000;
      },
    }),
    // Told once, without an id (docs/protocol.md, Token expiry and refresh); counted like every error.
    sayTokenExpired: ({ context }) => {
      const seconds = context.env.timing.tokenGraceMs / 1000;
      context.env.engine.fail(context.link, new ProtocolError('token_expired', `the token expired; send {"op":"auth","token":…} within ${seconds} s`));
    },
    crash: ({ event }) => {
      assertEvent(event, 'FAULT');
      throw event.error;
    },
  },
}).createMachine({
  id: 'connection',
  context: ({ input }) => ({
    link: input.link,
    env: input.env,
    keepaliveMs: input.keepaliveMs,
    awaitingPong: false,
    pingSentAt: 0,
    pingStallMark: 0,
    close: NOT_CLOSED,
    tokenExpiresAt: input.tokenExpiresAt,
  }),
  initial: 'connecting',
  on: { FAULT: { actions: 'crash' } },
  states: {
    connecting: {
      entry: 'register',
      on: {
        ACCEPTED: 'open',
        REJECTED: { target: 'closing', actions: 'setCloseFromEvent' },
        SOCKET_CLOSED: { target: 'closed', actions: 'setClosedByPeer' },
      },
    },
    open: {
      type: 'parallel',
      entry: ['markOpen', 'startBeat'],
      exit: 'markNotOpen',
      on: {
        QUIT: { target: 'closing', actions: { type: 'setClose', params: { code: CLOSE.normal, reason: 'quit', cause: 'leave' } } },
        SLOW_CONSUMER: {
          target: 'closing',
          actions: ['discardMailbox', { type: 'setClose', params: { code: CLOSE.slowConsumer, reason: 'slow consumer', cause: 'leave' } }],
        },
        CLOSE: { target: 'closing', actions: 'setCloseFromEvent' },
        SOCKET_CLOSED: { target: 'closed', actions: 'setClosedByPeer' },
      },
      states: {
        activity: {
          initial: 'online',
          states: {
            // Told by the heartbeat's timer (check) when idleMs passed without an application frame.
            online: { on: { IDLE_TIMEOUT: 'idle' } },
            // No application frames for idleMs. Closed after the grace only where --idle-close applies to it.
            idle: {
              entry: 'reportIdle',
              on: { ACTIVE: { target: 'online', actions: 'reportActive' } },
            },
          },
        },
        // The ping every heartbeatMs, on the one timer that also keeps the activity rules' time (nextCheck).
        heartbeat: {
          initial: 'beating',
          states: {
            beating: {
              on: {
                PONG: { actions: 'recordPong' },
                // Back from idle: idleness is next due idleMs from now, which may come before the timer set for the grace.
                ACTIVE: { target: 'beating', reenter: true },
              },
              after: {
                nextCheck: [
                  {
                    guard: 'pongOverdue',
                    target: '#connection.closing',
                    actions: { type: 'setClose', params: { code: CLOSE.heartbeat, reason: 'heartbeat timeout', cause: 'timeout' } },
                  },
                  {
                    guard: 'idleGraceOver',
                    target: '#connection.closing',
                    actions: { type: 'setClose', params: { code: CLOSE.idle, reason: 'idle timeout', cause: 'timeout' } },
                  },
                  { target: 'beating', reenter: true, actions: 'check' },
                ],
              },
            },
          },
        },
        // A token's life: told when it expires, closed with 4003 after the grace unless a fresh one (`auth`) came.
        token: {
          initial: 'checking',
          on: { TOKEN_REFRESHED: { target: '.checking', actions: 'setTokenExpiry' } },
          states: {
            checking: { always: [{ guard: 'tokenLasts', target: 'lasting' }, { target: 'valid' }] },
            // No token (auth off), or a token without `exp`.
            lasting: {},
            valid: {
              after: { tokenExpiry: [{ guard: 'tokenStillValid', target: 'valid', reenter: true }, { target: 'expired' }] },
            },
            expired: {
              entry: 'sayTokenExpired',
              after: {
                tokenGrace: {
                  target: '#connection.closing',
                  actions: { type: 'setClose', params: { code: CLOSE.tokenExpired, reason: 'token expired', cause: 'leave' } },
                },
              },
            },
          },
        },
        // A keepalive the client asked for (MQTT): nothing heard from it for keepaliveMs closes it as timed out.
        keepalive: {
          initial: 'askedFor',
          states: {
            askedFor: { always: [{ guard: 'hasKeepalive', target: 'watching' }, { target: 'none' }] },
            none: {},
            watching: {
              after: {
                keepaliveDeadline: [
                  { guard: 'heardWithinKeepalive', target: 'watching', reenter: true },
                  {
                    target: '#connection.closing',
                    actions: { type: 'setClose', params: { code: CLOSE.heartbeat, reason: 'keepalive timeout', cause: 'timeout' } },
                  },
                ],
              },
            },
          },
        },
      },
    },
    closing: {
      entry: 'startClose',
      on: { SOCKET_CLOSED: 'closed' },
      after: { closeTimeout: { target: 'closed', actions: 'terminateSocket' } },
    },
    // Final: the supervisor hears CONNECTION_CLOSED with the output below (see openConnection) and reaps the link.
    closed: { type: 'final' },
  },
  output: ({ context }): CloseIntent => context.close,
});

export type ConnectionActor = ActorRefFrom<typeof connectionMachine>;

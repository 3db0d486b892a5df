// ClientLifecycleMachine: one client's connection lifecycle (idle → connecting → connected → reconnecting → closed).
// It owns when to dial, when to give up, how long to wait, and when to refresh the token of a live connection;
// frames never pass through it (the client reads them straight off the socket and tells the machine only about
// `hello`, `unavailable` and `token_expired`).
import { assign, fromCallback, fromPromise, setup } from 'xstate';
import { backoffDelay, type Backoff } from './backoff.js';

/** What a dialled socket reports back to the machine. */
export interface SocketReport {
  opened(): void;
  /** The socket closed, or never opened. `status`: the HTTP status of a refused upgrade, when the platform shows it. */
  dropped(code: number, reason: string, status?: number): void;
}

export interface SocketHandle {
  /** Ends this socket (sends `quit` first when it is open); safe after it has dropped. */
  close(): void;
}

/** Opens one socket with `token`; the client implements it (platform WebSocket), tests fake it. */
export type Dial = (token: string | undefined, report: SocketReport) => SocketHandle;

export interface LifecycleInput {
  dial: Dial;
  backoff: Backoff;
  connectTimeoutMs: number;
  token?: string | undefined;
  getToken?: (() => string | Promise<string>) | undefined;
  /** Sends `{op:"auth"}` with a fresh token on the live connection; resolves at its ack, rejects with the refusal. */
  authorize?: ((token: string) => Promise<void>) | undefined;
  /** Told why a refresh failed (getToken threw, or the broker refused the token); the refresh is retried. */
  refreshFailed?: ((error: unknown) => void) | undefined;
  random?: () => number;
  /** Wall clock for token expiry; the simulated clock of a test replaces it. */
  now?: () => number;
}

export interface LastClose {
  code: number;
  reason: string;
  status?: number | undefined;
}

interface LifecycleContext {
  dial: Dial;
  backoff: Backoff;
  connectTimeoutMs: number;
  token: string | undefined;
  /** When the token was received (ms): the lifetime of a JWT without `iat` counts from here. */
  tokenSince: number;
  getToken: (() => string | Promise<string>) | undefined;
  authorize: ((token: string) => Promise<void>) | undefined;
  refreshFailed: ((error: unknown) => void) | undefined;
  random: () => number;
  now: () => number;
  /** Failed refreshes of the live connection's token since the last success. */
  refreshAttempt: number;
  refreshRetryInMs: number;
  /** Failed attempts since the last `hello`. */
  attempt: number;
  /** `attempt` when the last `hello` reset it: a connection that ends in `unavailable` did not serve, so it goes on from there. */
  attemptAtHello: number;
  /** The wait drawn for the coming reconnect (ms). */
  retryInMs: number;
  /** The current socket has opened (a drop before that is a failed connect: maybe a refused token). */
  opened: boolean;
  tokenStale: boolean;
  lastClose: LastClose | undefined;
}

export type LifecycleEvent =
  | { type: 'CONNECT' }
  | { type: 'OPENED' }
  | { type: 'HELLO' }
  | ({ type: 'DROPPED' } & LastClose)
  /** An `unavailable` error: this broker cannot serve us now; another attempt (maybe another node) can. */
  | { type: 'UNAVAILABLE'; reason: string }
  /** The broker says the connection's token expired (`token_expired`): refresh it now, before the grace ends. */
  | { type: 'TOKEN_EXPIRED' }
  /** Stop for good; `code`/`reason` say why (default: 1000, closed by the client). */
  | { type: 'CLOSE'; code?: number; reason?: string };

/** The close code of a connection whose token expired and was not refreshed within the grace period. */
export const TOKEN_EXPIRED_CLOSE = 4003;
/** The application disconnected this client (the server API's default code): reconnecting would undo its decision. */
export const SERVER_DISCONNECT_CLOSE = 4004;
/** Longest wait a timer can hold (setTimeout's bound); a refresh further away is re-planned when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Close codes after which reconnecting cannot help: policy (flooding, bad auth line), frame too big, protocol errors, the application's disconnect. */
export const STOP_CODES: ReadonlySet<number> = new Set([1002, 1003, 1007, 1008, 1009, 1010, SERVER_DISCONNECT_CLOSE]);
/** HTTP statuses of a refused upgrade that no retry changes (bad path, origin refused). 401 retries only with getToken. */
const STOP_STATUSES: ReadonlySet<number> = new Set([400, 403, 404]);

/** `exp` and `iat` of a JWT, read without verifying it (only to schedule); nothing for an opaque token. */
export function tokenTimes(token: string | undefined): { exp?: number; iat?: number } {
  const payload = token?.split('.')[1];
  if (!payload) return {};
  try {
    const claims = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: unknown; iat?: unknown };
    const finite = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
    const exp = finite(claims.exp);
    const iat = finite(claims.iat);
    return { ...(exp !== undefined && { exp }), ...(iat !== undefined && { iat }) };
  } catch {
    return {}; // not a JWT: the broker decides
  }
}

/** True when `token` is a JWT whose `exp` has passed (or passes within 5 s). Opaque tokens never expire here. */
export function tokenExpired(token: string | undefined, now: number): boolean {
  const { exp } = tokenTimes(token);
  return exp !== undefined && exp * 1000 <= now + 5000;
}

/**
 * When to refresh a JWT on a live connection (ms since 1970): `exp − min(30 s, 10 % of its lifetime)`, the lifetime
 * counted from `iat`, or from when the client received it. Undefined for a token without `exp`.
 */
export function refreshAt(token: string | undefined, receivedAt: number): number | undefined {
  const { exp, iat } = tokenTimes(token);
  if (exp === undefined) return undefined;
  const lifetimeMs = Math.max(0, exp * 1000 - (iat !== undefined ? iat * 1000 : receivedAt));
  return exp * 1000 - Math.min(30_000, lifetimeMs / 10);
}

export const clientLifecycleMachine = setup({
  types: {
    context: {} as LifecycleContext,
    events: {} as LifecycleEvent,
    input: {} as LifecycleInput,
  },
  actors: {
    socket: fromCallback<LifecycleEvent, { dial: Dial; token: string | undefined }>(({ input, sendBack }) => {
      const handle = input.dial(input.token, {
        opened: () => sendBack({ type: 'OPENED' }),
        dropped: (code, reason, status) => sendBack({ type: 'DROPPED', code, reason, status }),
      });
      return () => handle.close();
    }),
    token: fromPromise<string, { getToken: () => string | Promise<string> }>(async ({ input }) => input.getToken()),
    refresh: fromPromise<string, { getToken: () => string | Promise<string>; authorize: (token: string) => Promise<void> }>(async ({ input }) => {
      const token = await input.getToken();
      await input.authorize(token);
      return token;
    }),
  },
  delays: {
    reconnectDelay: ({ context }) => context.retryInMs,
    connectTimeout: ({ context }) => context.connectTimeoutMs,
    refreshDue: ({ context }) => Math.min(MAX_TIMER_MS, Math.max(0, refreshAt(context.token, context.tokenSince)! - context.now())),
    refreshRetryDelay: ({ context }) => context.refreshRetryInMs,
  },
  guards: {
    tokenNeeded: ({ context }) =>
      context.getToken !== undefined && (context.token === undefined || context.tokenStale || tokenExpired(context.token, context.now())),
    /** A live connection's token can be refreshed: a getToken to ask, and a JWT with an `exp` to plan by. */
    refreshable: ({ context }) => context.getToken !== undefined && context.authorize !== undefined && refreshAt(context.token, context.tokenSince) !== undefined,
    canRefresh: ({ context }) => context.getToken !== undefined && context.authorize !== undefined,
    refreshTimeCome: ({ context }) => context.now() >= refreshAt(context.token, context.tokenSince)! - 1,
    /** The token a refresh got is already due for refresh (an exp that cannot be extended, a clock ahead of the issuer's): asking again at once would loop. */
    refreshedTokenDue: ({ context, event }) => {
      const at = refreshAt((event as unknown as { output: string }).output, context.now());
      return at !== undefined && context.now() >= at - 1;
    },
    /** The broker does not know `auth` (auth off: bad_frame; an older broker: unknown_op): refreshing cannot help. */
    refreshUnsupported: ({ event }) => {
      const code = (event as { error?: { code?: unknown } }).error?.code;
      return code === 'bad_frame' || code === 'unknown_op';
    },
    stopsForGood: ({ context, event }) => {
      if (event.type !== 'DROPPED') return false;
      if (STOP_CODES.has(event.code)) return true;
      if (event.status !== undefined && STOP_STATUSES.has(event.status)) return true;
      // A refused token with nobody to ask for a new one: every retry would be refused the same way.
      return event.status === 401 && context.getToken === undefined;
    },
  },
  actions: {
    markOpened: assign({ opened: true }),
    recordDrop: assign(({ context, event }) => {
      const e = event as Extract<LifecycleEvent, { type: 'DROPPED' }>;
      return {
        lastClose: { code: e.code, reason: e.reason, status: e.status },
        // A connect refused before the socket opened may be an expired or revoked token (a browser hides the 401);
        // 4003: the broker closed us because the token expired.
        tokenStale: context.tokenStale || !context.opened || e.status === 401 || e.code === TOKEN_EXPIRED_CLOSE,
        opened: false,
      };
    }),
    recordUnavailable: assign(({ context, event }) => ({
      lastClose: { code: 1013, reason: (event as Extract<LifecycleEvent, { type: 'UNAVAILABLE' }>).reason },
      opened: false,
      attempt: Math.max(context.attempt, context.attemptAtHello),
    })),
    recordConnectTimeout: assign({ lastClose: { code: 1006, reason: 'connect timeout' }, opened: false }),
    recordTokenFailure: assign(({ event }) => ({
      lastClose: { code: 1006, reason: `getToken failed: ${String((event as unknown as { error?: unknown }).error)}` },
    })),
    storeToken: assign(({ context, event }) => ({ token: (event as unknown as { output: string }).output, tokenSince: context.now(), tokenStale: false })),
    storeRefreshedToken: assign(({ context, event }) => ({ token: (event as unknown as { output: string }).output, tokenSince: context.now(), refreshAttempt: 0 })),
    /** Keeps a refreshed token that is already due, without resetting the refresh backoff. */
    storeDueToken: assign(({ context, event }) => ({ token: (event as unknown as { output: string }).output, tokenSince: context.now() })),
    reportRefreshFailure: ({ context, event }) => context.refreshFailed?.((event as unknown as { error: unknown }).error),
    planRefreshRetry: assign(({ context }) => ({
      refreshAttempt: context.refreshAttempt + 1,
      refreshRetryInMs: backoffDelay(context.refreshAttempt + 1, context.backoff, context.random),
    })),
    recordClientClose: assign(({ event }) => {
      const e = event as Extract<LifecycleEvent, { type: 'CLOSE' }>;
      return { lastClose: { code: e.code ?? 1000, reason: e.reason ?? 'closed by the client' } };
    }),
    planRetry: assign(({ context }) => ({
      attempt: context.attempt + 1,
      retryInMs: backoffDelay(context.attempt + 1, context.backoff, context.random),
    })),
    resetAttempts: assign(({ context }) => ({ attempt: 0, attemptAtHello: context.attempt, tokenStale: false, lastClose: undefined, refreshAttempt: 0 })),
  },
}).createMachine({
  id: 'client',
  context: ({ input }) => ({
    dial: input.dial,
    backoff: input.backoff,
    connectTimeoutMs: input.connectTimeoutMs,
    token: input.token,
    tokenSince: (input.now ?? Date.now)(),
    getToken: input.getToken,
    authorize: input.authorize,
    refreshFailed: input.refreshFailed,
    random: input.random ?? Math.random,
    now: input.now ?? Date.now,
    refreshAttempt: 0,
    refreshRetryInMs: 0,
    attempt: 0,
    attemptAtHello: 0,
    retryInMs: 0,
    opened: false,
    tokenStale: false,
    lastClose: undefined,
  }),
  initial: 'idle',
  on: { CLOSE: { target: '.closed', actions: 'recordClientClose' } },
  states: {
    idle: {
      on: { CONNECT: [{ guard: 'tokenNeeded', target: 'authorizing' }, { target: 'session' }] },
    },
    authorizing: {
      invoke: {
        id: 'token',
        src: 'token',
        input: ({ context }) => ({ getToken: context.getToken! }),
        onDone: { target: 'session', actions: 'storeToken' },
        onError: { target: 'reconnecting', actions: 'recordTokenFailure' },
      },
    },
    session: {
      invoke: { id: 'socket', src: 'socket', input: ({ context }) => ({ dial: context.dial, token: context.token }) },
      initial: 'connecting',
      on: {
        DROPPED: [
          { guard: 'stopsForGood', target: 'closed', actions: 'recordDrop' },
          { target: 'reconnecting', actions: 'recordDrop' },
        ],
        UNAVAILABLE: { target: 'reconnecting', actions: 'recordUnavailable' },
      },
      states: {
        connecting: {
          on: { OPENED: { actions: 'markOpened' }, HELLO: 'connected' },
          after: { connectTimeout: { target: '#client.reconnecting', actions: 'recordConnectTimeout' } },
        },
        connected: {
          entry: 'resetAttempts',
          initial: 'tokenCheck',
          states: {
            tokenCheck: { always: [{ guard: 'refreshable', target: 'tokenValid' }, { target: 'tokenUnmanaged' }] },
            // No getToken, or a token without `exp`: nothing to plan; a `token_expired` still gets a fresh one.
            tokenUnmanaged: { on: { TOKEN_EXPIRED: { guard: 'canRefresh', target: 'refreshing' } } },
            tokenValid: {
              after: { refreshDue: [{ guard: 'refreshTimeCome', target: 'refreshing' }, { target: 'tokenValid', reenter: true }] },
              on: { TOKEN_EXPIRED: 'refreshing' },
            },
            refreshing: {
              invoke: {
                id: 'refresh',
                src: 'refresh',
                input: ({ context }) => ({ getToken: context.getToken!, authorize: context.authorize! }),
                onDone: [
                  // Asked again with the backoff, not at once: a getToken that keeps giving a due token is not hammered.
                  { guard: 'refreshedTokenDue', target: 'refreshBackoff', actions: ['storeDueToken', 'planRefreshRetry'] },
                  { target: 'tokenCheck', actions: 'storeRefreshedToken' },
                ],
                onError: [
                  { guard: 'refreshUnsupported', target: 'tokenUnmanaged', actions: 'reportRefreshFailure' },
                  { target: 'refreshBackoff', actions: ['reportRefreshFailure', 'planRefreshRetry'] },
                ],
              },
            },
            refreshBackoff: {
              after: { refreshRetryDelay: 'refreshing' },
              on: { TOKEN_EXPIRED: 'refreshing' },
            },
          },
        },
      },
    },
    reconnecting: {
      entry: 'planRetry',
      after: { reconnectDelay: [{ guard: 'tokenNeeded', target: 'authorizing' }, { target: 'session' }] },
    },
    closed: { type: 'final' },
  },
});

export type ClientState = 'idle' | 'authorizing' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** The flat state name of a snapshot of the machine. */
export function stateName(value: unknown): ClientState {
  if (typeof value === 'string') return value as ClientState;
  const session = (value as { session?: string | Record<string, unknown> }).session;
  if (session === undefined) return 'connecting';
  return (typeof session === 'string' ? session : Object.keys(session)[0]) as ClientState;
}

// ClientLifecycleMachine: one client's connection lifecycle (idle → connecting → connected → reconnecting → closed).
// It owns when to dial, when to give up and how long to wait; frames never pass through it (the client reads
// them straight off the socket and tells the machine only about `hello` and `unavailable`).
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
  getToken: (() => string | Promise<string>) | undefined;
  random: () => number;
  now: () => number;
  /** Failed attempts since the last `hello`. */
  attempt: number;
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
  | { type: 'CLOSE' };

/** Close codes after which reconnecting cannot help: policy (flooding, bad auth line), frame too big, protocol errors. */
export const STOP_CODES: ReadonlySet<number> = new Set([1002, 1003, 1007, 1008, 1009, 1010]);
/** HTTP statuses of a refused upgrade that no retry changes (bad path, origin refused). 401 retries only with getToken. */
const STOP_STATUSES: ReadonlySet<number> = new Set([400, 403, 404]);

/** True when `token` is a JWT whose `exp` has passed (or passes within 5 s). Opaque tokens never expire here. */
export function tokenExpired(token: string | undefined, now: number): boolean {
  const payload = token?.split('.')[1];
  if (!payload) return false;
  try {
    const claims = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: unknown };
    return typeof claims.exp === 'number' && claims.exp * 1000 <= now + 5000;
  } catch {
    return false; // not a JWT: the broker decides
  }
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
  },
  delays: {
    reconnectDelay: ({ context }) => context.retryInMs,
    connectTimeout: ({ context }) => context.connectTimeoutMs,
  },
  guards: {
    tokenNeeded: ({ context }) =>
      context.getToken !== undefined && (context.token === undefined || context.tokenStale || tokenExpired(context.token, context.now())),
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
        // A connect refused before the socket opened may be an expired or revoked token (a browser hides the 401).
        tokenStale: context.tokenStale || !context.opened || e.status === 401,
        opened: false,
      };
    }),
    recordUnavailable: assign(({ event }) => ({
      lastClose: { code: 1013, reason: (event as Extract<LifecycleEvent, { type: 'UNAVAILABLE' }>).reason },
      opened: false,
    })),
    recordConnectTimeout: assign({ lastClose: { code: 1006, reason: 'connect timeout' }, opened: false }),
    recordTokenFailure: assign(({ event }) => ({
      lastClose: { code: 1006, reason: `getToken failed: ${String((event as unknown as { error?: unknown }).error)}` },
    })),
    storeToken: assign(({ event }) => ({ token: (event as unknown as { output: string }).output, tokenStale: false })),
    planRetry: assign(({ context }) => ({
      attempt: context.attempt + 1,
      retryInMs: backoffDelay(context.attempt + 1, context.backoff, context.random),
    })),
    resetAttempts: assign({ attempt: 0, tokenStale: false, lastClose: undefined }),
  },
}).createMachine({
  id: 'client',
  context: ({ input }) => ({
    dial: input.dial,
    backoff: input.backoff,
    connectTimeoutMs: input.connectTimeoutMs,
    token: input.token,
    getToken: input.getToken,
    random: input.random ?? Math.random,
    now: input.now ?? Date.now,
    attempt: 0,
    retryInMs: 0,
    opened: false,
    tokenStale: false,
    lastClose: undefined,
  }),
  initial: 'idle',
  on: { CLOSE: '.closed' },
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
        connected: { entry: 'resetAttempts' },
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
  const session = (value as { session?: string }).session;
  return (session ?? 'connecting') as ClientState;
}

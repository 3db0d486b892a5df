// The one table of protocol error codes (docs/protocol.md, "Errors"). Errors are data: every bad input maps to one of these.
export const ERROR_CODES = {
  bad_frame: 'not JSON, not an object, or no op',
  unknown_op: 'unknown op',
  bad_topic: 'invalid topic or filter',
  bad_name: 'invalid name',
  name_taken: 'name already in use',
  not_found: 'no such client',
  too_large: 'frame or payload too large',
  rate_limited: 'too many frames',
  forbidden: 'not allowed',
  unauthorized: 'authentication required',
  unavailable: 'the broker cannot take this now (a cluster node without its Redis, the application backend down or slow); it did not act: retry later',
  outcome_unknown: 'the application backend did not answer an rpc, or the cluster store (Redis) a publish (timeout, broken connection): it may or may not have acted',
  backend_error: "the application backend answered the rpc with an error (its message)",
  internal: 'internal error',
  token_expired: 'the token expired; refresh it with an auth frame within the grace period',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CODES, code);
}

/** A protocol error as data: thrown by nothing, returned by validators. */
export class ProtocolError {
  constructor(
    readonly code: ErrorCode,
    readonly message: string,
    readonly id?: FrameId,
    /** The filter an error without id is about (a subscription the broker removed). */
    readonly topic?: string,
  ) {}
}

export type FrameId = number | string;

/** WebSocket close codes used by the broker (docs/protocol.md, "Liveness and close codes"): the one table. */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  /** The peer broke its protocol's rules (MQTT: a second CONNECT, a malformed packet, a packet out of place). */
  protocolError: 1002,
  /** No close frame was seen (the socket just ended): never sent, only reported. */
  abnormal: 1006,
  policy: 1008,
  tooLarge: 1009,
  internalError: 1011,
  tryAgainLater: 1013,
  idle: 4000,
  slowConsumer: 4001,
  heartbeat: 4002,
  /** The token expired and no fresh one came within --token-grace-ms. */
  tokenExpired: 4003,
  /** Disconnected by the application through the server API (the default code of POST /api/clients/disconnect). */
  byServer: 4004,
} as const;

// SwitchboardError: every failed request, refused publish, bad option and lost connection as data: a code and a
// message. The broker's codes are listed here, not imported: this package stands alone, and
// test/client/contract.test.ts fails when this list and the broker's table (src/protocol/errors.ts) disagree.

/** The error codes a broker sends (docs/protocol.md, "Errors"). */
export const BROKER_ERROR_CODES = [
  'bad_frame',
  'unknown_op',
  'bad_topic',
  'bad_name',
  'name_taken',
  'not_found',
  'too_large',
  'rate_limited',
  'forbidden',
  'unauthorized',
  'unavailable',
  'internal',
  'token_expired',
  'outcome_unknown',
  'backend_error',
] as const;

export type BrokerErrorCode = (typeof BROKER_ERROR_CODES)[number];

/** The codes the client raises itself. */
export const CLIENT_ERROR_CODES = [
  'bad_option', // the constructor refused an option (a relative URL in Node, a bad URL, a negative timeout…)
  'timeout', // no reply within requestTimeoutMs
  'disconnected', // the connection dropped before the reply came
  'closed', // the client was closed (close() or a close code that stops it)
  'queue_full', // the offline queue is at its bound
  'buffer_overflow', // a subscription held more than bufferSize messages nobody took
  'bad_data', // data that JSON cannot encode (a BigInt, a cycle): nothing was sent
] as const;

export type SwitchboardErrorCode = BrokerErrorCode | (typeof CLIENT_ERROR_CODES)[number];

export class SwitchboardError extends Error {
  override readonly name = 'SwitchboardError';

  constructor(
    /** One of SwitchboardErrorCode; a code from a newer broker arrives as it is. */
    readonly code: SwitchboardErrorCode | (string & {}),
    message: string,
  ) {
    super(message);
  }
}

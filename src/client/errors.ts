// SwitchboardError: every failed request, refused publish and lost connection as data: a code and a message.
import type { ErrorCode } from '../protocol/errors.js';

/** The broker's error codes, plus the ones the client itself raises. */
export type SwitchboardErrorCode =
  | ErrorCode
  | 'unavailable'
  | 'timeout' // no reply within requestTimeoutMs
  | 'disconnected' // the connection dropped before the reply came
  | 'closed' // the client was closed (close() or a close code that stops it)
  | 'queue_full' // the offline queue is at its bound
  | 'buffer_overflow'; // an async iterator fell more than bufferSize messages behind

export class SwitchboardError extends Error {
  override readonly name = 'SwitchboardError';

  constructor(
    readonly code: SwitchboardErrorCode | (string & {}),
    message: string,
  ) {
    super(message);
  }
}

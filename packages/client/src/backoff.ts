// Reconnect backoff: full jitter (AWS architecture blog, "Exponential Backoff and Jitter"), so a restarted
// broker is not stampeded by every client at the same instant. Pure.

export interface Backoff {
  /** Lower bound of the first wait's ceiling (ms). */
  minMs: number;
  /** Ceiling of any wait (ms). */
  maxMs: number;
  /** Growth of the ceiling per failed attempt. */
  factor: number;
}

export const DEFAULT_BACKOFF: Backoff = { minMs: 250, maxMs: 10_000, factor: 2 };

/** The ceiling of the wait before attempt `attempt` (1 = the first retry). */
export function backoffCeiling(attempt: number, b: Backoff): number {
  return Math.min(b.maxMs, b.minMs * b.factor ** Math.max(0, attempt - 1));
}

/** A wait uniformly drawn in [0, ceiling]: full jitter. `random` returns [0, 1). */
export function backoffDelay(attempt: number, b: Backoff, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(attempt, b));
}

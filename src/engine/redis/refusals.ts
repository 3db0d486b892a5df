// What a client is told when Redis could not take its request: `unavailable` (it surely did not run: unreachable,
// loading, out of memory, a shard down) or `outcome_unknown` (it may have run: see outcome.ts).
import { ProtocolError, type FrameId } from '../../protocol/errors.js';
import { NotSent } from './outcome.js';

export const unavailable = (id?: FrameId) => new ProtocolError('unavailable', 'the cluster store (Redis) is unreachable; retry later', id);

export const unknownOutcome = (id?: FrameId) =>
  new ProtocolError('outcome_unknown', 'the cluster store (Redis) did not answer: the message may or may not have been published; a retry with the same key publishes it once', id);

/** A request Redis took and did not answer, which may have acted (a direct): `outcome_unknown` with this message. */
export class OutcomeUnknown extends Error {}

/**
 * What the client is told when Redis cannot take a request: unreachable, or full (maxmemory with noeviction); or that
 * it may have acted (OutcomeUnknown).
 */
export function refusal(err: unknown, id?: FrameId): ProtocolError | undefined {
  if (err instanceof OutcomeUnknown) return new ProtocolError('outcome_unknown', err.message, id);
  if (err instanceof NotSent) return unavailable(id);
  if (isRedisDown(err)) return unavailable(id);
  if (isOutOfMemory(err)) {
    return new ProtocolError('unavailable', 'the cluster store (Redis) is out of memory (maxmemory); retry later', id);
  }
  return undefined;
}

/** Redis is full (maxmemory with noeviction): it refused the command, which may pass once memory is freed. */
export function isOutOfMemory(err: unknown): boolean {
  return /^OOM |OOM command not allowed/.test(String((err as Error)?.message ?? err));
}

/**
 * Errors that mean "Redis cannot answer now" (not connected, timed out, loading; on a Redis Cluster also a shard
 * down, slots moving, the cluster not ready; a script call refused unsent after NOSCRIPT, script-runner.ts): the
 * client gets `unavailable`. CROSSSLOT is not one of them (a bug).
 */
export function isRedisDown(err: unknown): boolean {
  const msg = String((err as Error)?.message ?? err);
  return /Stream isn't writeable|Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|LOADING|enableOfflineQueue|max retries|ETIMEDOUT|EPIPE|Reached the max retries|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes is available|Cluster isn't ready|NOSCRIPT/i.test(msg);
}

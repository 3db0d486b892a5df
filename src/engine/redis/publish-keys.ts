// SharedPublishKeys: idempotency keys of server-side publishes, remembered by the cluster (Redis), not per node: the
// first publish with a key claims it (SET NX PX) and stores its result there; a retry through any node gets that
// result (`duplicate: true`). A publish that surely did not happen (unavailable) frees its key for the retry; one
// whose outcome is unknown leaves the key saying so (a retry is not published twice, it is told the same). A retry
// that meets a claim still in progress waits for its result, up to `waitMs`, then answers outcome_unknown.
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { ProtocolError } from '../../protocol/errors.js';
import { PUBLISH_KEY_MS, type PublishKeys } from '../deployment.js';
import type { PublishResult } from '../engine.js';
import { KEYS } from './keys.js';

const PENDING = 'pending';
const POLL_MS = 20;

export class SharedPublishKeys implements PublishKeys {
  constructor(
    private readonly cmd: Redis | Cluster,
    /** How long a retry waits for a claim in progress (a publish's own time bound). */
    private readonly waitMs: number,
    private readonly ttlMs = PUBLISH_KEY_MS,
  ) {}

  async once(key: string, publish: () => Promise<PublishResult | ProtocolError>): Promise<(PublishResult & { duplicate?: true }) | ProtocolError> {
    const k = KEYS.publishKey(createHash('sha1').update(key).digest('hex'));
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      let claimed: string | null;
      try {
        claimed = await this.cmd.set(k, PENDING, 'PX', this.ttlMs, 'NX');
      } catch (err) {
        return new ProtocolError('unavailable', `the cluster store (Redis) cannot check the idempotency key: ${(err as Error).message}`);
      }
      if (claimed === 'OK') return this.publishClaimed(k, publish);
      const seen = await this.cmd.get(k).catch(() => PENDING);
      if (seen !== null && seen !== PENDING) return answerOf(seen);
      // null: the claim was freed (its publish surely failed) or expired since: claim again.
      if (seen === PENDING && Date.now() > deadline) {
        return new ProtocolError('outcome_unknown', 'a publish with this idempotency key is still in progress or its node stopped: it may or may not have been published');
      }
      if (seen === PENDING) await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  private async publishClaimed(k: string, publish: () => Promise<PublishResult | ProtocolError>): Promise<PublishResult | ProtocolError> {
    let result: PublishResult | ProtocolError;
    try {
      result = await publish();
    } catch (err) {
      await this.cmd.del(k).catch(() => undefined);
      throw err;
    }
    if (result instanceof ProtocolError && result.code !== 'outcome_unknown') {
      // Not published (unavailable, refused data): the key is free for the retry.
      await this.cmd.del(k).catch(() => undefined);
      return result;
    }
    const stored = result instanceof ProtocolError ? { error: result.code, message: result.message } : result;
    // Not stored (Redis went away): the key stays `pending` until it expires; retries answer outcome_unknown meanwhile.
    await this.cmd.set(k, JSON.stringify(stored), 'PX', this.ttlMs).catch(() => undefined);
    return result;
  }
}

function answerOf(stored: string): (PublishResult & { duplicate: true }) | ProtocolError {
  const v = JSON.parse(stored) as PublishResult | { error: 'outcome_unknown'; message: string };
  if ('error' in v) return new ProtocolError('outcome_unknown', v.message);
  return { seq: v.seq, epoch: v.epoch, delivered: v.delivered, duplicate: true };
}

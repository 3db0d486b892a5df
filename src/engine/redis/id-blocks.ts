// IdBlocks: client ids unique across the cluster, handed out synchronously from blocks reserved in Redis (INCRBY of
// a shared counter). A spare block is reserved while half of the current one is left, so a connection never waits.
import type { Logger } from 'pino';

export const ID_BLOCK = 10_000;

export class IdBlocks {
  private next = 1;
  private end = 0;
  private spare: { next: number; end: number } | undefined;
  private refilling = false;
  private highest = 0;

  /**
   * `reserve(n)`: adds n to the shared counter and resolves with its new value (the block's last id), or -1 when the
   * store lost its data since this node last initialised (nothing reserved: the node reserves after re-initialising).
   */
  constructor(
    private readonly reserve: (n: number) => Promise<number>,
    private readonly log: Logger,
    private readonly block = ID_BLOCK,
  ) {}

  /** Every id this node may have given out or holds: the counter must be put back at least past it. */
  get reservedUpTo(): number {
    return Math.max(this.highest, this.end, this.spare?.end ?? 0);
  }

  /** Whether the current block is used up (a fresh one is reserved when the store is reachable). */
  get exhausted(): boolean {
    return this.next > this.end;
  }

  /** A fresh id `c<n>`. */
  take(): string {
    if (this.next > this.end && this.spare) {
      this.next = this.spare.next;
      this.end = this.spare.end;
      this.spare = undefined;
    }
    if (this.next > this.end) {
      // Only when Redis was unreachable for longer than a block lasts: ids may then repeat another node's.
      this.log.error('client id block exhausted while Redis is unreachable');
      this.end = this.next;
    }
    const n = this.next++;
    this.highest = Math.max(this.highest, n);
    if (!this.spare && !this.refilling && this.end - this.next < this.block / 2) void this.refill();
    return `c${n}`;
  }

  /** Reserves a fresh current block (at start and after Redis lost the counter). */
  async reserveBlock(): Promise<void> {
    const end = await this.reserve(this.block);
    if (end < 0) throw new Error('client id block refused: the store lost its data since this node initialised');
    this.next = end - this.block + 1;
    this.end = end;
  }

  /** The store lost its data: a spare reserved meanwhile may come from its restarted counter, and is dropped. */
  lost(): void {
    this.spare = undefined;
  }

  private async refill(): Promise<void> {
    this.refilling = true;
    try {
      const end = await this.reserve(this.block);
      if (end >= 0) this.spare = { next: end - this.block + 1, end };
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'id block reservation failed; retried later');
    } finally {
      this.refilling = false;
    }
  }
}

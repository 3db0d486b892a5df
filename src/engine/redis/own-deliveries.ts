// OwnDeliveries: how many local subscribers got each of this node's own publishes. A publish's result waits until
// its message came back over the bus and was delivered here, so a publisher's own echo precedes its ack and
// `delivered` counts this node's deliveries. The count may arrive before the script's reply or after it: either side
// that comes first leaves it here for the other. Bounded; a waiter that hears nothing in time gets 0.
const MAX_UNCLAIMED = 10_000;

/** The key of one message: its topic, epoch and seq. */
export function messageKey(topic: string, epoch: string, seq: number): string {
  return `${topic}\u0000${epoch}\u0000${seq}`;
}

export class OwnDeliveries {
  private readonly own = new Map<string, number | ((delivered: number) => void)>();

  constructor(private readonly waitMs: number) {}

  /**
   * Resolves with the count of message `key` once it was delivered here. Not brought by the bus within waitMs (the
   * node's subscriber is away, or listens on a master that no longer numbers the topic: a failover, a slot moving),
   * `late` is called (the topic's stream is read: cursors.ts fillNow), which delivers it here if it can; then 0 after
   * waitMs more (the publish itself stands).
   */
  wait(key: string, late?: () => void): Promise<number> {
    const known = this.own.get(key);
    if (typeof known === 'number') {
      this.own.delete(key);
      return Promise.resolve(known);
    }
    return new Promise((resolve) => {
      const giveUp = () => {
        this.own.delete(key);
        resolve(0);
      };
      let timer = setTimeout(() => {
        if (!late) return giveUp();
        timer = setTimeout(giveUp, this.waitMs);
        late();
      }, this.waitMs);
      this.own.set(key, (n) => {
        clearTimeout(timer);
        resolve(n);
      });
    });
  }

  /** Message `key` of this node was delivered to `n` local subscribers. */
  delivered(key: string, n: number): void {
    const waiter = this.own.get(key);
    if (typeof waiter === 'function') {
      this.own.delete(key);
      return waiter(n);
    }
    // Bounded without dropping a publisher waiting for its count: the oldest count nobody claimed makes room.
    if (this.own.size > MAX_UNCLAIMED) {
      for (const [k, v] of this.own) {
        if (typeof v !== 'number') continue;
        this.own.delete(k);
        break;
      }
    }
    this.own.set(key, n);
  }

  /** The node stopped hearing some topics: their publishers waiting for a count get 0 now. */
  keepOnly(hears: (topic: string) => boolean): void {
    for (const [key, waiter] of this.own) {
      const topic = key.slice(0, key.indexOf('\u0000'));
      if (hears(topic)) continue;
      this.own.delete(key);
      if (typeof waiter === 'function') waiter(0);
    }
  }
}

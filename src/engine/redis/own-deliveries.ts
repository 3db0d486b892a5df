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

  /** Resolves with the count of message `key` once it was delivered here (0 when the bus lost it). */
  wait(key: string): Promise<number> {
    const known = this.own.get(key);
    if (typeof known === 'number') {
      this.own.delete(key);
      return Promise.resolve(known);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // The bus lost it (the subscriber reconnects and fills from the stream): the publish itself stands.
        this.own.delete(key);
        resolve(0);
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

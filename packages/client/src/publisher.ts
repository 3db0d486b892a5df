// Publisher: the client's publishes. One is sent at once when the connection is online and nothing waits before it;
// else it waits, in order, in a bounded queue (offlineQueueSize) that goes out at the next hello, after the
// resubscribes. A keyed publish whose connection dropped before its ack goes back into the queue (the broker takes
// one key once, so sending it again is safe), up to KEYED_RESENDS times.
import { SwitchboardError } from './errors.js';
import { encode, type Link } from './link.js';
import type { AckFrame, PubAck } from './wire.js';

export interface PublishOptions {
  /** Wait for the broker's ack (default true). false: a notification, no id, no reply. */
  ack?: boolean;
  /** false: not delivered back to this client's own subscriptions. */
  echo?: boolean;
  /**
   * An idempotency key (1–128 characters, unique per message, e.g. a UUID): the broker publishes it once per topic
   * within 10 minutes. A keyed publish whose connection dropped before its ack is sent again after the reconnect
   * (up to 3 times) instead of failing with `disconnected`; a retry the broker had already taken resolves with
   * `duplicate: true` and the first publish's seq.
   */
  key?: string;
}

/** Times a keyed publish is sent again after its connection dropped before the ack. */
const KEYED_RESENDS = 3;

interface Queued {
  /** The publish frame's JSON, without an id (encoded once, when it was queued). */
  text: string;
  ack: boolean;
  /** A keyed publish: how many times it was sent again after a drop (undefined: not keyed, never resent). */
  resends?: number;
  resolve: (ack: PubAck | undefined) => void;
  reject: (err: SwitchboardError) => void;
}

export class Publisher {
  private readonly queue: Queued[] = [];

  constructor(
    private readonly link: Link,
    /** Publishes queued for a connection at most (offlineQueueSize). */
    private readonly bound: () => number,
  ) {}

  publish(topic: string, data: unknown, options: PublishOptions): Promise<PubAck | void> {
    const ack = options.ack !== false;
    const frame = { op: 'pub', topic, data, ...(options.echo === false && { echo: false }), ...(options.key !== undefined && { key: options.key }) };
    if (this.link.closed) return Promise.reject(new SwitchboardError('closed', 'the client is closed'));
    // A keyed one is safe to send again (the broker takes one key once): send() puts it back in the queue.
    return this.sendOrQueue(frame, ack, options.key !== undefined && ack);
  }

  /** The connection said hello (the resubscribes went first, so our own subscriptions see these): what waited goes. */
  flush(): void {
    for (const q of this.queue.splice(0)) this.send(q);
  }

  /** The client closed: what waits fails with `closed`. */
  failAll(why: string): void {
    for (const q of this.queue.splice(0)) q.reject(new SwitchboardError('closed', `publish not sent: ${why}`));
  }

  /** Sends a publish now when online and nothing waits before it, else queues it for the next connection. */
  private sendOrQueue(frame: Record<string, unknown>, ack: boolean, keyed: boolean): Promise<PubAck | void> {
    const queued = !(this.link.online && this.queue.length === 0);
    if (queued && this.queue.length >= this.bound()) return Promise.reject(this.full());
    // Encoded once, now: what cannot be encoded is refused at once, not when the queue is sent (the publishes behind
    // it go on); a queued one keeps its text, and its request id is added to it when it is sent.
    const text = encode(frame);
    if (text instanceof SwitchboardError) return Promise.reject(text);
    return new Promise<PubAck | undefined>((resolve, reject) => {
      const q: Queued = { text, ack, resolve, reject, ...(keyed && { resends: 0 }) };
      if (queued) this.queue.push(q);
      else this.send(q);
    });
  }

  /**
   * Sends a publish (online). A keyed one whose connection drops before its ack goes back into the queue at once,
   * in the order it was sent (failAll fails requests in that order), so its resend keeps its place.
   */
  private send(q: Queued): void {
    if (!q.ack) {
      this.link.sendText(q.text);
      return q.resolve(undefined);
    }
    if (!this.link.online) return q.reject(this.link.notConnected('pub'));
    const id = this.link.requests.expect('pub', {
      ok: (reply) => q.resolve(pubAck(reply as AckFrame)),
      fail: (err) => {
        if (err.code === 'disconnected' && q.resends !== undefined && q.resends < KEYED_RESENDS && !this.link.closed) {
          q.resends++;
          if (this.queue.length < this.bound()) return void this.queue.push(q);
          return q.reject(this.full());
        }
        q.reject(err);
      },
    });
    this.link.sendText(`${q.text.slice(0, -1)},"id":${JSON.stringify(id)}}`);
  }

  private full(): SwitchboardError {
    return new SwitchboardError('queue_full', `offline queue full (${this.bound()} publishes waiting for a connection)`);
  }
}

function pubAck(a: AckFrame): PubAck {
  return {
    seq: a.seq as number,
    delivered: a.delivered as number,
    ...(typeof a.epoch === 'string' && { epoch: a.epoch }),
    ...(a.duplicate === true && { duplicate: true as const }),
  };
}

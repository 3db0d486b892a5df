// Subscriptions: the client's side of its subscriptions. It holds them across reconnects and sends their `sub` at
// each hello (a resume from their positions), fans each message and presence event of the connection out to the
// ones it concerns (the client's `message` event tells a message once, however many took it), keeps their presence
// maps in step with `who` snapshots, and unsubscribes at the broker only when no other subscription holds the filter.
import { Departed } from './departed.js';
import { SwitchboardError } from './errors.js';
import type { Link } from './link.js';
import { checkSubscribeOptions } from './options.js';
import { Subscription, type Message, type SubscribeOptions, type SubscriptionHost } from './subscription.js';
import { matches } from './topics.js';
import type { AckFrame, ClientInfo, EventFrame, HelloFrame, MsgFrame, SubAck } from './wire.js';

/** Our ids on earlier connections that presence re-syncs pass over (the most recent). */
const OWN_IDS_KEPT = 16;

/** What the subscriptions need of their client besides the connection. */
export interface SubscriptionsHost {
  /** The broker's hello on the current (or last) connection. */
  hello(): HelloFrame | undefined;
  /** Whether the client's `message` event has listeners now. */
  tellsMessages(): boolean;
  /** The client's `message` event: a message new to every subscription that took it. */
  message(message: Message): void;
  /** The client's `error` event. */
  error(err: SwitchboardError): void;
  /** The broker answered `unavailable`: this node cannot serve us now, the client reconnects (maybe elsewhere). */
  unavailable(reason: string): void;
}

export class Subscriptions {
  private readonly subs = new Set<Subscription<unknown>>();
  /** Subscriptions made by subscription() whose subscribe() was not called yet: close() ends them too. */
  private readonly unstarted = new Set<Subscription<unknown>>();
  private readonly departed = new Departed();
  /** Our own ids on earlier connections: presence re-syncs pass over them quietly. */
  private readonly ownIds = new Set<string>();

  constructor(
    private readonly link: Link,
    private readonly client: SubscriptionsHost,
  ) {}

  /** A subscription to `filter`, not yet subscribed. Throws `bad_option` for a bad filter or option. */
  create<T>(filter: string, options: SubscribeOptions): Subscription<T> {
    const { positions } = checkSubscribeOptions(filter, options);
    const sub = new Subscription<T>(this.host, filter, options, positions);
    // Ended by close() too: an iterator taken before subscribe() must not wait for ever on a closed client.
    if (this.link.closed) sub.end(new SwitchboardError('closed', 'the client is closed'));
    else this.unstarted.add(sub as Subscription<unknown>);
    return sub;
  }

  /**
   * The connection said hello: the subscriptions held now, to send once the client told `connected` (one made by a
   * `connected` listener is sent once, by its own start()).
   */
  resubscriber(): () => void {
    const held = [...this.subs];
    return () => {
      for (const sub of held) if (this.subs.has(sub)) this.sendSub(sub);
    };
  }

  /** A message of the connection, to every subscription it is new to. */
  message(frame: MsgFrame): void {
    // One object per frame, shared by every subscription that takes it; the client's `message` event tells it once.
    const message: Message = { topic: frame.topic, seq: frame.seq, epoch: frame.epoch, data: frame.data, from: frame.from, ts: frame.ts };
    const told = this.client.tellsMessages();
    let fresh = false;
    // A copy another subscription took earlier (the replay of a newer, overlapping one) was told then, also by
    // one that has ended since.
    let toldBefore = this.departed.took(message);
    for (const sub of this.subs) {
      if (!matches(sub.filter, frame.topic)) continue;
      if (sub.accept(message, told)) fresh = true;
      else if (sub.hadEarlier(message)) toldBefore = true;
    }
    if (fresh && told && !toldBefore) this.client.message(message);
  }

  presenceEvent(frame: EventFrame): void {
    for (const sub of this.subs) if (sub.wantsPresence && sub.filter === frame.topic) sub.presenceEvent(frame);
  }

  /** The broker removed the subscriptions of `filter` (a refreshed token no longer allows it): they fail, as refused ones. */
  removed(filter: string, err: SwitchboardError): void {
    for (const sub of [...this.subs]) {
      if (sub.filter !== filter) continue;
      this.drop(sub);
      sub.refused(err);
    }
  }

  /** The connection is gone (`ownId`: our id on it): each subscription resubscribes on the next one. */
  disconnected(ownId: string | undefined): void {
    if (ownId !== undefined) {
      this.ownIds.add(ownId);
      // Only recent ones can still be listed (the broker ends a lost connection within its heartbeat timeout): a
      // client that reconnects for months keeps a few, not one per connection it ever had.
      if (this.ownIds.size > OWN_IDS_KEPT) this.ownIds.delete(this.ownIds.values().next().value!);
    }
    for (const sub of this.subs) sub.disconnected();
  }

  /** The client closed (`why`): every subscription ends with `closed`. */
  closeAll(why: string): void {
    for (const sub of [...this.subs, ...this.unstarted]) sub.end(new SwitchboardError('closed', why));
    this.subs.clear();
    this.unstarted.clear();
    this.departed.clear();
  }

  /** What subscriptions ask of their client. */
  private readonly host: SubscriptionHost = {
    start: (sub) => {
      this.unstarted.delete(sub);
      if (this.link.closed) return sub.end(new SwitchboardError('closed', 'the client is closed'));
      this.subs.add(sub);
      if (this.link.online) this.sendSub(sub);
    },
    unsubscribe: (sub) => this.unsubscribe(sub),
    failed: (sub, err) => {
      this.forget(sub);
      this.client.error(err);
    },
  };

  private sendSub(sub: Subscription<unknown>): void {
    const own = sub.subFrame(this.client.hello()?.server.protocol ?? 2);
    // The broker keeps one subscription per filter and connection, and a `sub` without `presence` turns its presence
    // off: while any subscription of this filter wants presence, every `sub` of it asks for it.
    const watched = !own.presence && [...this.subs].some((s) => s !== sub && s.filter === sub.filter && s.wantsPresence);
    const fields = watched ? { ...own, presence: true as const } : own;
    const ws = this.link.socket;
    const id = this.link.requests.expect('sub', {
      ok: (ack) => {
        if (this.link.socket !== ws || !this.subs.has(sub)) return;
        sub.acked(ack as SubAck, fields);
        if (sub.wantsPresence) this.syncPresence(sub);
      },
      fail: (err) => {
        if (err.code === 'disconnected') return; // resubscribes on the next connection
        // Sent again only while it stands: one unsubscribed meanwhile had its `unsub` sent after it, the last word.
        if (err.code === 'timeout' && this.link.socket === ws) return void (this.subs.has(sub) && this.sendSub(sub));
        if (err.code === 'unavailable') {
          // The broker did not act (say a cluster node whose Redis is down): not a refusal of this subscription. It
          // stays, and comes back on the next connection, as after an `unavailable` error of any other kind.
          if (this.link.socket === ws && this.link.online) this.client.unavailable(err.message);
          return;
        }
        this.drop(sub);
        if (err.code === 'closed') return sub.end(err);
        // The first refusal rejects subscribe()'s promise; a later one (a resubscribe) has nobody waiting.
        if (!sub.refused(err)) this.client.error(err);
      },
    });
    this.link.write({ op: 'sub', id, ...fields });
  }

  private async unsubscribe(sub: Subscription<unknown>): Promise<void> {
    // Held at the broker, or about to be: a `sub` sent on this connection and not answered yet is taken before the
    // `unsub` that follows it (one connection's requests are served in order).
    const atBroker = sub.state === 'subscribed' || (sub.state === 'subscribing' && this.link.online);
    if (!this.drop(sub)) return (this.unstarted.delete(sub), sub.end());
    sub.end();
    if (atBroker) await this.unsubAtBroker(sub.filter);
  }

  /** A subscription that failed on its own (`buffer_overflow`) is dropped at the broker too. */
  private forget(sub: Subscription<unknown>): void {
    if (!this.drop(sub)) return;
    this.unsubAtBroker(sub.filter).catch((err: SwitchboardError) => this.client.error(err));
  }

  /**
   * Removes `sub` from the client's subscriptions (false: it was not one), keeping what it took of topics a remaining
   * subscription matches (`departed`); what no remaining subscription matches is forgotten.
   */
  private drop(sub: Subscription<unknown>): boolean {
    if (!this.subs.delete(sub)) return false;
    const filters = [...this.subs].map((s) => s.filter);
    this.departed.keep(sub, (topic) => filters.some((f) => matches(f, topic)));
    return true;
  }

  private async unsubAtBroker(filter: string): Promise<void> {
    // Another subscription on the same filter keeps the broker's subscription.
    if (!this.link.online || [...this.subs].some((s) => s.filter === filter)) return;
    await this.link.request({ op: 'unsub', topic: filter }).catch((err: SwitchboardError) => {
      if (err.code !== 'disconnected' && err.code !== 'closed') throw err;
    });
  }

  /** A fresh `who` of the filter, page by page; events before its first page are already in it. */
  private syncPresence(sub: Subscription<unknown>, cursor?: string): void {
    const ws = this.link.socket;
    if (cursor === undefined) sub.syncStarted();
    const id = this.link.requests.expect('who', {
      ok: (reply) => {
        const ack = reply as AckFrame;
        if (this.link.socket !== ws) return;
        const next = typeof ack.next === 'string' ? ack.next : undefined;
        const quiet = new Set(this.ownIds);
        const hello = this.client.hello();
        if (hello) quiet.add(hello.client.id);
        sub.syncPage((ack.clients as ClientInfo[] | undefined) ?? [], next === undefined, quiet);
        if (next !== undefined) this.syncPresence(sub, next);
      },
      fail: (err) => {
        if (err.code !== 'disconnected' && err.code !== 'closed') sub.syncFailed(err);
      },
    });
    this.link.write({ op: 'who', id, topic: sub.filter, limit: 1000, ...(cursor !== undefined && { cursor }) });
  }
}

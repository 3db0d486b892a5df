// Link: one connection's shared record. The reader, the writer (mailbox) and the handler (the machine)
// each hold it; the supervisor's registry and topic index point at it.
import type { ClientInfo, PublicClient, ServerFrame, Transport } from '../protocol/frames.js';
import type { TokenBucket } from '../engine/bucket.js';
import { localSessionId } from '../engine/engine.js';
import { Outgoing } from '../protocol/outgoing.js';
import { Mailbox, type MailboxLimits, type MailboxOwner, type SlowConsumerPolicy, type Wire } from './mailbox.js';
import type { Grant } from '../auth/grant.js';
import type { FrameId } from '../protocol/errors.js';
import type { ConnectionEvent, ConnectionRef } from './connection.events.js';


/** The filter set of a link that holds or watches nothing: shared, so adding to it is a bug (use Link.hold, Link.watch). */
class NoFilters extends Set<string> {
  override add(): this {
    throw new Error('add filters with Link.hold() or Link.watch()');
  }
}
const NO_FILTERS: Set<string> = new NoFilters();

/** Told of a connection's changes as they happen, whatever engine made them (webhooks: src/hooks/events.ts). */
export interface LinkObserver {
  /** Its `hello` is being sent: it is admitted, under the name and id the hello shows. */
  connected(link: Link): void;
  subscribed(link: Link, filter: string): void;
  unsubscribed(link: Link, filter: string): void;
  watched(link: Link, filter: string): void;
  unwatched(link: Link, filter: string): void;
  renamed(link: Link, old: string): void;
}

/** A filter set that reports what is added and removed (only links with an observer have one). */
class ObservedFilters extends Set<string> {
  constructor(
    private readonly added: (filter: string) => void,
    private readonly removed: (filter: string) => void,
  ) {
    super();
  }

  override add(filter: string): this {
    if (this.has(filter)) return this;
    super.add(filter);
    this.added(filter);
    return this;
  }

  override delete(filter: string): boolean {
    if (!super.delete(filter)) return false;
    this.removed(filter);
    return true;
  }

  override clear(): void {
    const gone = [...this];
    super.clear();
    for (const filter of gone) this.removed(filter);
  }
}

export interface LinkOptions {
  addr: string;
  wire: Wire;
  /** The mailbox's bounds: one object per configuration, shared by every link. */
  mailboxLimits: MailboxLimits;
  slowConsumer: SlowConsumerPolicy;
  /** The id an engine assigned (unique across a cluster); default: the next of this process's counter. */
  id?: string | undefined;
  /** Told of subscriptions, presence and renames (webhooks); absent: nothing is observed, at no cost. */
  observer?: LinkObserver | undefined;
}

export class Link implements MailboxOwner {
  /** Ids look like `c1`, `c2`, … and are never reused within a process. */
  readonly id: string;
  name: string;
  readonly addr: string;
  readonly transport: Transport;
  readonly wire: Wire;
  readonly mailbox: Mailbox;
  readonly connectedAt = Date.now();
  private readonly observer: LinkObserver | undefined;
  /** Filters held: many clients (listeners that subscribe in the URL aside) hold none, so the set is made by the first hold(). */
  private holding: Set<string> | undefined;
  /** Filters watched for presence: most clients watch none, so their set is made by the first watch(). */
  private watching: Set<string> | undefined;
  /** Last inbound application frame (pongs excluded), read by the idle guard instead of re-arming timers. */
  lastActivity = Date.now();
  /** Last inbound traffic of any kind (frames, WebSocket pongs and pings): the peer is alive. */
  lastSeen = Date.now();
  framesIn = 0;
  bytesIn = 0;
  /** Admitted and not closing: its frames are served (set by the connection machine on entering and leaving `open`). */
  isOpen = false;
  /** In the machine's `idle` state: its next frame is news for the machine (ACTIVE). */
  isIdle = false;
  /** Set by the transport right after the connection actor is created. */
  actor: ConnectionRef | undefined;
  /** Fixed by an auth token's `sub` claim: rename is refused. */
  nameFixed = false;
  /** What the client's token allows (publish/subscribe filters); undefined when authentication is off. */
  grant: Grant | undefined;
  /** The reader's token bucket: costly replies (`who` pages) are charged to it by size. */
  rate: TokenBucket | undefined;
  /** Renames allowed per second (created by the first rename). */
  renames: TokenBucket | undefined;
  /** What the application backend's connect hook attached (shown to other clients in presence events). */
  meta: Record<string, unknown> | undefined;
  /** Fields the ack of a request id carries besides the engine's own (a subscribe hook's `data`); usually none. */
  private ackExtras: Map<FrameId, Record<string, unknown>> | undefined;

  constructor(opts: LinkOptions) {
    this.id = opts.id ?? localSessionId();
    this.addr = opts.addr;
    this.wire = opts.wire;
    this.transport = opts.wire.transport;
    this.name = this.id;
    const observer = (this.observer = opts.observer);
    if (observer) {
      // Only an observed link pays for an accessor: renames are reported once the name really changes.
      let name = this.name;
      Object.defineProperty(this, 'name', {
        get: () => name,
        set: (next: string) => {
          const old = name;
          name = next;
          if (old !== next && this.isOpen) observer.renamed(this, old);
        },
        enumerable: true,
      });
    }
    this.mailbox = new Mailbox(opts.wire, opts.mailboxLimits, opts.slowConsumer, this);
  }

  /** Its mailbox overflowed under the close policy: the connection machine closes it (4001). */
  slowConsumer(): void {
    this.actor?.send({ type: 'SLOW_CONSUMER' });
  }

  /** Its wire threw while the mailbox flushed: the connection is broken, a crash of its actor. */
  faulted(error: unknown): void {
    this.actor?.send({ type: 'FAULT', error });
  }

  /** Filters this client holds (add with hold()). */
  get subscriptions(): Set<string> {
    return this.holding ?? NO_FILTERS;
  }

  hold(filter: string): void {
    const observer = this.observer;
    (this.holding ??= observer ? new ObservedFilters((f) => observer.subscribed(this, f), (f) => observer.unsubscribed(this, f)) : new Set()).add(filter);
  }

  /** Filters this client watches for presence (add with watch()). */
  get presence(): Set<string> {
    return this.watching ?? NO_FILTERS;
  }

  watch(filter: string): void {
    const observer = this.observer;
    (this.watching ??= observer ? new ObservedFilters((f) => observer.watched(this, f), (f) => observer.unwatched(this, f)) : new Set()).add(filter);
  }

  info(): ClientInfo {
    return { id: this.id, name: this.name, addr: this.addr, transport: this.transport };
  }

  /** How other clients see this one (presence events): no address. */
  publicInfo(): PublicClient {
    return this.meta === undefined ? { id: this.id, name: this.name, transport: this.transport } : { id: this.id, name: this.name, transport: this.transport, meta: this.meta };
  }

  /** The reply to request `id` carries `fields` too when it is an ack (an error reply drops them). */
  addToReply(id: FrameId, fields: Record<string, unknown>): void {
    (this.ackExtras ??= new Map()).set(id, fields);
  }

  /** Links travel inside actor events; serialising one (inspector, logs) shows who, not the object graph. */
  toJSON(): ClientInfo {
    return this.info();
  }

  /** Queues one frame for this client only. */
  /** Tells its connection machine something that changes its state (the reader's quit, first frame after idle, flood). */
  signal(event: ConnectionEvent): void {
    this.actor?.send(event);
  }

  send(frame: ServerFrame): boolean {
    if (this.ackExtras !== undefined) frame = this.withExtras(frame);
    if (this.observer !== undefined && frame.op === 'hello') this.observer.connected(this);
    this.wire.sending?.(frame);
    return this.mailbox.push(new Outgoing(frame));
  }

  private withExtras(frame: ServerFrame): ServerFrame {
    if ((frame.op !== 'ack' && frame.op !== 'error') || frame.id === undefined) return frame;
    const extra = this.ackExtras!.get(frame.id);
    if (extra === undefined) return frame;
    this.ackExtras!.delete(frame.id);
    if (this.ackExtras!.size === 0) this.ackExtras = undefined;
    return frame.op === 'ack' ? { ...frame, ...extra } : frame;
  }

  /** The connection machine's state as one word: connecting, online, idle, closing or closed. */
  get state(): string {
    const value = this.actor?.getSnapshot().value as string | { open?: { activity?: string } } | undefined;
    if (value === undefined) return 'connecting';
    if (typeof value === 'string') return value;
    return value.open?.activity ?? 'open';
  }
}

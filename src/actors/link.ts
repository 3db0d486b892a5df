// Link: one connection's shared record. The reader, the writer (mailbox) and the handler (the machine)
// each hold it; the supervisor's registry and topic index point at it.
import type { ClientInfo, PublicClient, ServerFrame, Transport } from '../protocol/frames.js';
import type { TokenBucket } from '../engine/bucket.js';
import { Outgoing } from '../protocol/outgoing.js';
import { Mailbox, type MailboxLimits, type MailboxOwner, type SlowConsumerPolicy, type Wire } from './mailbox.js';
import type { Grant } from '../auth/grant.js';
import type { ConnectionActor, ConnectionEvent } from './connection.machine.js';

let lastId = 0;

/** The presence set of a link that watches nothing: shared, so adding to it is a bug (use Link.watch). */
class NoFilters extends Set<string> {
  override add(): this {
    throw new Error('add presence filters with Link.watch()');
  }
}
const NO_FILTERS: Set<string> = new NoFilters();

export interface LinkOptions {
  addr: string;
  wire: Wire;
  /** The mailbox's bounds: one object per configuration, shared by every link. */
  mailboxLimits: MailboxLimits;
  slowConsumer: SlowConsumerPolicy;
  /** The id an engine assigned (unique across a cluster); default: the next of this process's counter. */
  id?: string | undefined;
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
  /** Filters this client holds. */
  readonly subscriptions = new Set<string>();
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
  actor: ConnectionActor | undefined;
  /** Fixed by an auth token's `sub` claim: rename is refused. */
  nameFixed = false;
  /** What the client's token allows (publish/subscribe filters); undefined when authentication is off. */
  grant: Grant | undefined;
  /** The reader's token bucket: costly replies (`who` pages) are charged to it by size. */
  rate: TokenBucket | undefined;
  /** Renames allowed per second (created by the first rename). */
  renames: TokenBucket | undefined;

  constructor(opts: LinkOptions) {
    this.id = opts.id ?? `c${++lastId}`;
    this.addr = opts.addr;
    this.wire = opts.wire;
    this.transport = opts.wire.transport;
    this.name = this.id;
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

  /** Filters this client watches for presence (add with watch()). */
  get presence(): Set<string> {
    return this.watching ?? NO_FILTERS;
  }

  watch(filter: string): void {
    (this.watching ??= new Set()).add(filter);
  }

  info(): ClientInfo {
    return { id: this.id, name: this.name, addr: this.addr, transport: this.transport };
  }

  /** How other clients see this one (presence events): no address. */
  publicInfo(): PublicClient {
    return { id: this.id, name: this.name, transport: this.transport };
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
    return this.mailbox.push(new Outgoing(frame));
  }

  /** The connection machine's state as one word: connecting, online, idle, closing or closed. */
  get state(): string {
    const value = this.actor?.getSnapshot().value as string | { open?: { activity?: string } } | undefined;
    if (value === undefined) return 'connecting';
    if (typeof value === 'string') return value;
    return value.open?.activity ?? 'open';
  }
}

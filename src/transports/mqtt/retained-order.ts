// The order of retained messages against everything else on one MQTT connection. Reads: a new subscription's
// retained messages come from a store that may answer later than the SUBACK; the live messages of its topics written
// meanwhile are held and follow them, so a retained message never arrives after a newer live one. Writes: a retained
// publish is kept before its PUBACK / PUBREC goes out, and those answers keep the order of the publishes.
import type { QoS } from 'mqtt-packet';
import type { Outgoing } from '../../protocol/outgoing.js';
import type { ServerFrame } from '../../protocol/frames.js';
import { mqttMatches } from './match.js';
import type { Retained, RetainedStore } from './store.js';

/** Retained messages one SUBSCRIBE filter may bring at most (each goes through the mailbox, charged to it). */
const RETAINED_PER_FILTER = 1000;
/** Live messages held behind one filter's retained read at most (beyond: delivered at once, retained may follow). */
const RETAINED_HOLD_MAX = 1000;

/** A filter's retained messages being read, and the live messages of its topics held meanwhile (in their order). */
export interface RetainedRead {
  filter: string;
  held: Outgoing[];
}

/** What the reads do through their session (each queued behind what its mailbox holds already). */
export interface RetainedReadHost {
  /** The connection is still open. */
  open(): boolean;
  /** A held live message, queued again. */
  requeue(out: Outgoing): void;
  /** Held live messages that will not be sent: the connection ended while a read held them. */
  unsent(held: readonly Outgoing[]): void;
  /** A retained message of a read, at `qos`, carrying `ids`. */
  retained(message: Retained, qos: QoS, ids: number[] | undefined): void;
  /** The end of a read, behind its retained messages: `end(read)` is called when it is written. */
  ended(read: RetainedRead): void;
}

export class RetainedReads {
  private readonly reads: RetainedRead[] = [];

  constructor(private readonly host: RetainedReadHost) {}

  /** Some filter's retained messages are being read. */
  get reading(): boolean {
    return this.reads.length > 0;
  }

  /**
   * Reads the retained messages `filter` matches, queued behind what is queued now (at most RETAINED_PER_FILTER), to
   * go out at `qos` at most, with the Subscription Identifier of the subscription (5.0) in `ids`.
   */
  start(store: RetainedStore, filter: string, qos: QoS, ids?: number[]): void {
    const read: RetainedRead = { filter, held: [] };
    this.reads.push(read);
    const done = (messages: Retained[]) => {
      if (!this.host.open()) return this.end(read);
      for (const message of messages) this.host.retained(message, Math.min(qos, message.qos) as QoS, ids);
      // The read ends behind them, in the mailbox's order: a live message already queued (not yet written) when the
      // read came back is held when written, not sent before the retained messages queued after it.
      this.host.ended(read);
    };
    store.matching(filter, RETAINED_PER_FILTER).then(done, () => done([]));
  }

  /** The end of a read: the live messages it held are queued again, in their order (written after it). */
  end(read: RetainedRead): void {
    const at = this.reads.indexOf(read);
    if (at < 0) return;
    this.reads.splice(at, 1);
    if (!this.host.open()) return this.host.unsent(read.held);
    for (const out of read.held) this.host.requeue(out);
  }

  /** The live messages held now by the reads still going (the connection ends: they will not be sent). */
  get held(): Outgoing[] {
    return this.reads.flatMap((read) => read.held);
  }

  /** Holds a live message of a topic whose retained messages are still being read; false when none is (or the hold is full). */
  hold(out: Outgoing, topic: string): boolean {
    for (const read of this.reads) {
      if (read.held.length < RETAINED_HOLD_MAX && mqttMatches(read.filter, topic)) {
        read.held.push(out);
        return true;
      }
    }
    return false;
  }
}

export class RetainedWrites {
  /** Retained messages being kept: PUBACKs and PUBRECs wait behind them, in order. */
  private held: Promise<void> | undefined;

  constructor(
    private readonly store: RetainedStore | undefined,
    /** Queues a packet that waited (behind what the mailbox holds). */
    private readonly ready: (packet: Buffer) => void,
  ) {}

  /** Answers wait behind a retained write. */
  get waiting(): boolean {
    return this.held !== undefined;
  }

  /** A retained publish the engine took: kept, ordered by its position (the last publish of a topic wins on every node). */
  keep(message: Retained, ack: Extract<ServerFrame, { op: 'ack' | 'error' }>): () => Promise<void> {
    const { seq, epoch } = ack as { seq?: unknown; epoch?: unknown };
    const order = typeof seq === 'number' && typeof epoch === 'string' ? { seq, epoch } : undefined;
    return () => this.store?.set({ ...message, at: Date.now() }, order) ?? Promise.resolve();
  }

  /** The retained writes started and not done yet, in order: a later one starts behind them. */
  private writing: Promise<void> | undefined;

  /**
   * Starts a retained write (when the engine took its publish), behind the retained writes still under way, so a
   * later publish (say a clear, an empty payload) never lands before an earlier one still being kept. Never rejects.
   */
  start(write: () => Promise<void>): Promise<void> {
    const mine: Promise<void> = (this.writing ?? Promise.resolve())
      .then(write)
      .catch(() => undefined)
      .finally(() => {
        if (this.writing === mine) this.writing = undefined;
      });
    this.writing = mine;
    return mine;
  }

  /**
   * Queues `packet` (a PUBACK or PUBREC) once `kept` (its retained write, started) and every answer held before it
   * are done: its answer then means the retained message is kept, and answers keep the order of the publishes.
   */
  after(kept: Promise<void> | undefined, packet: Buffer): void {
    const mine: Promise<void> = (this.held ?? Promise.resolve())
      .then(() => kept)
      .then(() => this.ready(packet))
      .finally(() => {
        if (this.held === mine) this.held = undefined;
      });
    this.held = mine;
  }
}

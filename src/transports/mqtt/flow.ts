// MQTT 5.0 flow control (§4.9, Receive Maximum) in both directions of one connection. Outbound: the messages that
// wait because the client's Receive Maximum is reached (its quota of unacknowledged QoS 1 and 2 PUBLISHes), in the
// order they came, bounded as the session's messages in flight are, so a client that stops acknowledging is a slow
// consumer, not an unbounded queue. Inbound: the broker's own Receive Maximum (CONNACK), over the client's QoS 1 and 2
// PUBLISHes it has not answered yet (QoS 1 until its PUBACK is queued, QoS 2 until PUBREL); past it, DISCONNECT 0x93.
import type { QoS } from 'mqtt-packet';
import { Fifo } from '../../protocol/fifo.js';
import type { Outgoing } from '../../protocol/outgoing.js';
import type { Position, Retained } from './store.js';
import type { Marks } from './filter-options.js';

/** MQTT's Receive Maximum when none is said (and the broker's by default, --mqtt-receive-maximum). */
export const RECEIVE_MAXIMUM_DEFAULT = 65535;

/** The protocol violation of a client past it: DISCONNECT 0x93, receive maximum exceeded (codes.ts). */
export const RECEIVE_MAXIMUM_EXCEEDED = 'receive maximum exceeded';

/**
 * A message that waits for room in the client's Receive Maximum: a live one (with its position, for a persistent
 * session) or a subscription's retained one, at the QoS it goes out with.
 */
export type Waiting =
  | { kind: 'live'; out: Outgoing; topic: string; qos: QoS; marks: Marks; at: Position | undefined }
  | { kind: 'retained'; message: Retained; qos: QoS; ids: number[] | undefined };

/** What a waiting message is charged, in bytes: what the mailbox charges for the frame, or a retained message's topic and payload. */
const sizeOf = (w: Waiting): number => (w.kind === 'live' ? w.out.bytes : w.message.payload.length + Buffer.byteLength(w.message.topic));

/** What the waiting messages need of the session's messages in flight (flights.ts). */
export interface SendQuota {
  /** The client's Receive Maximum is reached: no QoS 1 or 2 PUBLISH may go now. */
  readonly full: boolean;
  /** A free packet id for a QoS 1 or 2 message; undefined when the in-flight bound is full. */
  packetId(): number | undefined;
}

/** What the waiting messages need of their session. */
export interface SendQueueHost {
  /** The session was cut as a slow consumer: nothing more goes out. */
  cut(): boolean;
  /** The PUBLISH of waiting message `w` now (`pid`: its packet id, 0 for QoS 0), taken in flight; nothing when it expired or does not fit. */
  packet(w: Waiting, pid: number): Buffer;
  /** Queues the waiting messages' turn (release()) behind what the mailbox holds. */
  turn(): void;
  /** The client is a slow consumer: the session is cut. */
  slowConsumer(): void;
}

/**
 * The messages waiting for the client's Receive Maximum, first in first out. Once one waits, every later one (QoS 0
 * too) waits behind it: the client gets the broker's messages in the order the broker has them (seq order on each
 * topic), and a persistent session's positions never pass a message it did not get. Their turn comes through the
 * mailbox, behind what it holds, once the client acknowledges one (PUBACK, PUBCOMP, a refusing PUBREC).
 */
export class SendQueue {
  private readonly items = new Fifo<Waiting>();
  private bytes = 0;
  /** Their turn is queued in the mailbox (one at a time: it sends as many as there is room for). */
  private releasing = false;

  constructor(
    private readonly quota: SendQuota,
    private readonly host: SendQueueHost,
    /** Messages in flight and waiting at most, together (--mailbox-size: the in-flight bound). */
    private readonly maxMessages: number,
    /** Bytes waiting at most (--mailbox-bytes, as the mailbox). */
    private readonly maxBytes: number,
  ) {}

  get length(): number {
    return this.items.length;
  }

  /** Whether a message of `qos` waits now: something already waits, or it takes a slot and the Receive Maximum is reached. */
  mustWait(qos: QoS): boolean {
    return this.length > 0 || (qos > 0 && this.quota.full);
  }

  /**
   * Queues `w` behind the others; false when that would take the queue past its bounds (`inFlight` messages sent and
   * unacknowledged count in its message bound): the client is then a slow consumer. Into an empty queue one message
   * always goes, as into an empty mailbox.
   */
  add(w: Waiting, inFlight: number): boolean {
    const size = sizeOf(w);
    if (this.length > 0 && (inFlight + this.length >= this.maxMessages || this.bytes + size > this.maxBytes)) return false;
    this.items.push(w);
    this.bytes += size;
    return true;
  }

  /** A message completed: the waiting ones' turn is queued, when there is room for the first. */
  freed(): void {
    if (this.releasing || this.length === 0 || this.host.cut() || this.quota.full) return;
    this.releasing = true;
    this.host.turn();
  }

  /** Their turn: the PUBLISHes of as many as the Receive Maximum has room for, in order (QoS 0 ones too). */
  release(): Buffer {
    this.releasing = false;
    const packets: Buffer[] = [];
    while (this.length > 0 && !this.host.cut()) {
      const w = this.items.peek()!;
      if (w.qos > 0 && this.quota.full) break;
      const pid = w.qos === 0 ? 0 : this.quota.packetId();
      // No packet id free (the in-flight bound): it stays waiting (its position with it), and the session is cut.
      if (pid === undefined) {
        this.host.slowConsumer();
        break;
      }
      this.items.shift();
      this.bytes -= sizeOf(w);
      packets.push(this.host.packet(w, pid));
    }
    return Buffer.concat(packets);
  }

  /**
   * The connection ended with messages waiting, never sent: the position of each topic goes back to just before its
   * first live one (the messages sent on it came before), so a persistent session's resume delivers them.
   */
  unsent(back: (topic: string, at: Position) => void): void {
    const done = new Set<string>();
    for (const w of this.items) {
      if (w.kind !== 'live' || !w.at || done.has(w.topic)) continue;
      done.add(w.topic);
      back(w.topic, w.at);
    }
  }
}

/**
 * The client's QoS 1 and 2 PUBLISHes of this connection the broker has not answered yet: QoS 1 until the engine has
 * answered it (its PUBACK queued: the broker holds nothing of it any more, and a client that got every PUBACK it was
 * owed never counts more than the broker does), QoS 2 until the client's PUBREL (or a refusing PUBREC). A QoS 2
 * exchange of an earlier connection (its PUBREL still to come on this one) is not counted: the client's quota starts
 * anew with each connection (§4.9).
 */
export class InboundQuota {
  private qos1 = 0;
  private readonly qos2 = new Set<number>();

  /** `max`: the broker's Receive Maximum (CONNACK, --mqtt-receive-maximum). */
  constructor(readonly max = RECEIVE_MAXIMUM_DEFAULT) {}

  /** A new QoS 1 or 2 PUBLISH (`pid` for QoS 2): false, counting nothing, when the client is at the broker's Receive Maximum. */
  take(qos: 1 | 2, pid: number): boolean {
    if (this.qos1 + this.qos2.size >= this.max) return false;
    if (qos === 1) this.qos1++;
    else this.qos2.add(pid);
    return true;
  }

  /** A QoS 1 PUBLISH answered (its PUBACK, or its refusal). */
  acked(): void {
    if (this.qos1 > 0) this.qos1--;
  }

  /** QoS 2 exchange `pid` over on the broker's side: PUBREL received, or the PUBLISH refused in its PUBREC. */
  released(pid: number): void {
    this.qos2.delete(pid);
  }
}

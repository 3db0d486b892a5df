// The messages an MQTT session sent at QoS 1 or 2 that its client has not acknowledged yet, by packet id: the packet
// ids they take (at most the in-flight bound, --mailbox-size, beyond which the client is a slow consumer), whether the
// client's Receive Maximum (5.0) lets one more go, and, when a persistent session resumes, their resending a window
// at a time. They are session state: kept with a persistent session (store.ts), so a reconnect sends them again (DUP)
// in the order first sent, and count against the new connection's Receive Maximum until acknowledged.
import type { Inflight } from './store.js';

/** The largest packet id (two bytes; 0 is not one). */
const MAX_PACKET_ID = 65_535;

/** What a resume's resending does through its session (each queued behind what its mailbox holds already). */
export interface ResendHost {
  /** The unacknowledged message `pid` again: its PUBLISH (DUP), or its PUBREL when the client had `released` it (PUBREC). */
  resend(pid: number, released: boolean): void;
  /** The last unacknowledged message was resent: the session's filters resume now. */
  resent(): void;
  /** A message completed: the client's Receive Maximum may have room for one that waits. */
  freed(): void;
}

export class Flights {
  /** While a resume resends (resume()): the unacknowledged messages it found, in order, and how far it got. */
  private toResend: number[] | undefined;
  private resendAt = 0;
  /** Resent by the resume and not completed yet: its window. */
  private readonly resent = new Set<number>();

  constructor(
    /** The messages sent and not acknowledged yet, by packet id (the session keeps this map as it is). */
    readonly inflight: Map<number, Inflight>,
    /** The packet id tried first for the next message (the session keeps it too). */
    private next: number,
    /** Unacknowledged QoS 1/2 messages at most (beyond: a slow consumer); a resume resends a quarter of it at a time. */
    private readonly maxInflight: number,
    private readonly host: ResendHost,
    /** The client's Receive Maximum (5.0 CONNECT; otherwise every packet id): unacknowledged messages sent at most. */
    private readonly receiveMaximum = MAX_PACKET_ID,
  ) {}

  /**
   * The client's Receive Maximum is reached: no QoS 1 or 2 PUBLISH may go until it acknowledges one (PUBACK, PUBCOMP,
   * or a refusing PUBREC) [MQTT-3.3.4-9]. A QoS 2 message counts until its PUBCOMP; a resumed session's messages
   * count from the start, resent or not yet.
   */
  get full(): boolean {
    return this.inflight.size >= this.receiveMaximum;
  }

  /** The packet id tried first for the next message. */
  get nextPacketId(): number {
    return this.next;
  }

  /** A resume is still resending: the session's filters have not resumed yet. */
  get resuming(): boolean {
    return this.toResend !== undefined;
  }

  /**
   * Resends every unacknowledged message, in the order first sent, a window at a time (a quarter of the in-flight
   * bound, at most the client's Receive Maximum), the next as the client completes one; then says so (the session's
   * filters resume).
   */
  resume(): void {
    this.toResend = [...this.inflight.keys()];
    this.resendMore();
  }

  /** Resends while the window has room; after the last one, resumes the filters (once). */
  private resendMore(): void {
    const window = Math.max(1, Math.min(this.receiveMaximum, Math.floor(this.maxInflight / 4)));
    const pids = this.toResend!;
    while (this.resent.size < window && this.resendAt < pids.length) {
      const pid = pids[this.resendAt++]!;
      const flight = this.inflight.get(pid);
      if (!flight) continue;
      this.resent.add(pid);
      this.host.resend(pid, flight.released);
    }
    if (this.resendAt < pids.length) return;
    this.toResend = undefined;
    this.host.resent();
  }

  /**
   * `pid` completed (PUBACK, PUBCOMP, a refusing PUBREC): out of flight, and, while resuming, room for the next
   * resend; otherwise for a message waiting for the client's Receive Maximum.
   */
  completed(pid: number): void {
    if (!this.inflight.delete(pid)) return;
    if (this.resent.delete(pid) && this.toResend) this.resendMore();
    else if (!this.toResend) this.host.freed();
  }

  /** A free packet id for a QoS 1 or 2 message; undefined when the in-flight bound is full (the client stopped acknowledging). */
  packetId(): number | undefined {
    if (this.inflight.size >= Math.min(MAX_PACKET_ID, this.maxInflight)) return undefined;
    while (this.inflight.has(this.next)) this.next = (this.next % MAX_PACKET_ID) + 1;
    const pid = this.next;
    this.next = (pid % MAX_PACKET_ID) + 1;
    return pid;
  }
}

// LiveDelivery: the messages the bus brings (in order, from Cursors) to this node's subscribers, once each. A client
// resuming has its live messages held from the moment it is subscribed until its replay is queued; after a resume,
// per topic, live messages at or below the position replayed up to are duplicates and are skipped. The count of
// each of this node's own publishes goes to its publisher (OwnDeliveries).
import type { Position } from '../resume.js';
import type { Session } from '../engine.js';
import { filterMatches } from '../../protocol/topic.js';
import type { BusMessage } from './cursors.js';
import { messageKey, type OwnDeliveries } from './own-deliveries.js';

/** Hands a message of `topic` to each matching local subscriber but `skip` through `push` (MemoryEngine.fanOut). */
export type FanOut<S> = (topic: string, skip: string, push: (s: S) => boolean) => number;

export class LiveDelivery<S extends Session> {
  /** Sessions resuming: their live messages wait here until the replay is queued. */
  private readonly resuming = new Map<S, BusMessage[]>();
  /** After a resume: per topic the position replayed up to; live messages at or below it are duplicates. */
  private readonly floors = new Map<S, Map<string, Position>>();

  constructor(
    private readonly fanOut: FanOut<S>,
    private readonly own: OwnDeliveries,
    /** This node's id: its own messages' counts go to their publishers. */
    private readonly node: string,
  ) {}

  /** One message to every matching local subscriber, once each. */
  deliver(m: BusMessage): void {
    const delivered = this.fanOut(m.topic, m.noEcho, (s) => {
      const buffer = this.resuming.get(s);
      if (!buffer) return this.push(s, m);
      buffer.push(m);
      return true;
    });
    if (m.node === this.node) this.own.delivered(messageKey(m.topic, m.epoch, m.seq), delivered);
  }

  /** `s` starts resuming: its live messages wait until release(). */
  hold(s: S): void {
    this.resuming.set(s, []);
  }

  /** `s` was answered (replayed, or refused): the live messages held meanwhile follow, those it still wants. */
  release(s: S): void {
    const buffer = this.resuming.get(s);
    if (!buffer) return;
    this.resuming.delete(s);
    for (const m of buffer) if (wants(s, m)) this.push(s, m);
  }

  /** `s` was replayed up to `positions`: live messages at or below them are not delivered again. */
  replayedTo(s: S, positions: Map<string, Position>): void {
    let floors = this.floors.get(s);
    for (const [topic, p] of positions) {
      if (!floors) this.floors.set(s, (floors = new Map()));
      floors.set(topic, p);
    }
  }

  /** `s` is gone. */
  forget(s: S): void {
    this.resuming.delete(s);
    this.floors.delete(s);
  }

  private push(s: S, m: BusMessage): boolean {
    const floors = this.floors.get(s);
    const floor = floors?.get(m.topic);
    if (floor) {
      if (floor.epoch === m.epoch && m.seq <= floor.seq) return false;
      floors!.delete(m.topic);
      if (floors!.size === 0) this.floors.delete(s);
    }
    return s.mailbox.push(m.out);
  }
}

function wants(s: Session, m: BusMessage): boolean {
  for (const f of s.subscriptions) if (filterMatches(f, m.topic)) return true;
  return false;
}

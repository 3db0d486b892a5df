// A MemoryEngine with one bug planted on purpose, to prove the conformance checker finds and shrinks it.
// The bug: re-subscribing to a filter without presence acks but keeps the old presence watch,
// so the client goes on receiving join/leave/rename events it asked to stop.
import { MemoryEngine } from '../../src/engine/memory.js';
import type { Link } from '../../src/actors/link.js';
import { ackFrame, type FrameOf } from '../../src/protocol/frames.js';

export class StickyPresenceHub extends MemoryEngine<Link> {
  override sub(link: Link, frame: FrameOf<'sub'>): void {
    if (frame.presence !== true && frame.since === undefined && link.presence.has(frame.topic)) {
      if (frame.id !== undefined) link.send(ackFrame(frame.id, { life: this.life }));
      return;
    }
    super.sub(link, frame);
  }
}

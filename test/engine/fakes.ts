// Sessions for engine tests without sockets: what is queued for one is recorded in `frames`, in order.
import type { Session, SessionMailbox } from '../../src/engine/engine.js';
import type { Outgoing } from '../../src/protocol/outgoing.js';
import type { ServerFrame } from '../../src/protocol/frames.js';

export interface Fake extends Session {
  /** Every frame queued for it, in order (sent or pushed). */
  readonly frames: ServerFrame[];
}

export function fake(id: string): Fake {
  const frames: ServerFrame[] = [];
  const queued: Outgoing[] = [];
  const mailbox: SessionMailbox = {
    push: (out) => (queued.push(out), frames.push(out.frame), true),
    capacity: 1000,
    byteCapacity: 1 << 20,
    get depth() {
      return queued.length;
    },
    get bytes() {
      return 0;
    },
    acceptsDirect: () => true,
    get tail() {
      return undefined;
    },
    replaceTail: () => undefined,
  };
  return Object.assign(sessionWith(id, mailbox, (frame) => (frames.push(frame), true)), { frames });
}

/** A session over `mailbox` (engine tests, and test/bench/engine-micro.ts with a mailbox that only counts). */
export function sessionWith(id: string, mailbox: SessionMailbox, send: (frame: ServerFrame) => boolean): Session {
  const s: Session = {
    id,
    name: id,
    addr: '127.0.0.1:1',
    transport: 'ws',
    mailbox,
    subscriptions: new Set(),
    presence: new Set(),
    hold: (filter) => void s.subscriptions.add(filter),
    watch: (filter) => void s.presence.add(filter),
    grant: undefined,
    nameFixed: false,
    rate: undefined,
    renames: undefined,
    state: 'online',
    send,
    info: () => ({ id: s.id, name: s.name, addr: s.addr, transport: s.transport }),
    publicInfo: () => ({ id: s.id, name: s.name, transport: s.transport }),
  };
  return s;
}

export const OPTIONS = {
  serverName: 'test',
  version: '0',
  heartbeatMs: 1000,
  idleMs: 1000,
  historySize: 10,
  historyBytes: 1 << 20,
  historyTopicBytes: 1 << 16,
  maxTopics: 100,
  maxSubscriptions: 10,
  idleClose: 'none' as const,
  replayMaxMessages: 100,
  replayMaxBytes: 1 << 20,
};

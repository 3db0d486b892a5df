// The connection actor's vocabulary: the events it hears and the close intent it ends with. Apart from the machine
// so the Link (which sends those events) and the machine (which holds the Link) need not import each other.
import type { ActorRef, AnyMachineSnapshot } from 'xstate';
import type { LeaveCause } from '../engine/engine.js';

export interface CloseIntent {
  code: number;
  reason: string;
  cause: LeaveCause;
}

export type ConnectionEvent =
  | { type: 'ACCEPTED' }
  | ({ type: 'REJECTED' } & CloseIntent)
  /** The first application frame after idle (the reader serves the frame itself). */
  | { type: 'ACTIVE' }
  /** Raised by the machine itself (its one timer) when idleMs passed without an application frame. */
  | { type: 'IDLE_TIMEOUT' }
  | { type: 'QUIT' }
  | { type: 'PONG' }
  | { type: 'SLOW_CONSUMER' }
  | ({ type: 'CLOSE' } & CloseIntent)
  | { type: 'SOCKET_CLOSED'; code: number; reason: string }
  /** A fresh token was accepted (`auth`): its `exp` (seconds since 1970), or undefined when it has none. */
  | { type: 'TOKEN_REFRESHED'; exp: number | undefined }
  /** A transport or writer fault outside the machine, raised here so it is this actor's crash (supervisor → 1011). */
  | { type: 'FAULT'; error: unknown };

/** What a Link needs of its connection actor: to send it events and read its state (the machine's actor is one). */
export type ConnectionRef = ActorRef<AnyMachineSnapshot, ConnectionEvent>;

// Link: the client's current connection as the parts of the client use it: the socket frames are written to,
// whether it said hello (`online`), and the requests in flight on it, each matched to its reply by id (requests.ts).
// A request made while not online fails at once (`disconnected`, or `closed` once the client is closed); one whose
// connection drops fails `disconnected`. The client sets the socket and `online`; the parts read them.
import { SwitchboardError } from './errors.js';
import type { ClientState } from './lifecycle.machine.js';
import { PendingRequests } from './requests.js';
import type { WebSocketLike } from './socket.js';
import type { AckFrame } from './wire.js';

const OPEN = 1;

export class Link {
  /** The dialled socket, until it is gone; a reply handler compares it to tell a reply of an earlier connection. */
  socket: WebSocketLike | undefined;
  /** The socket said hello. */
  online = false;
  readonly requests: PendingRequests;

  constructor(
    requestTimeoutMs: () => number,
    private readonly state: () => ClientState,
  ) {
    this.requests = new PendingRequests(requestTimeoutMs);
  }

  get closed(): boolean {
    return this.state() === 'closed';
  }

  /** The error of an `op` asked for while not online. */
  notConnected(op: string): SwitchboardError {
    return new SwitchboardError(this.closed ? 'closed' : 'disconnected', `${op}: not connected (${this.state()})`);
  }

  /** Sends a request; resolves with its ack, rejects with the broker's error, `timeout`, `disconnected`, `closed` or `bad_data`. */
  request(frame: Record<string, unknown>, timeoutMs?: number): Promise<AckFrame> {
    if (!this.online) return Promise.reject(this.notConnected(String(frame.op)));
    const { id, reply } = this.requests.open(String(frame.op), timeoutMs);
    const text = encode({ ...frame, id });
    if (text instanceof SwitchboardError) this.requests.cancel(id, text);
    else this.sendText(text);
    return reply as Promise<AckFrame>;
  }

  /** Sends one of the client's own frames (sub, unsub, quit: always encodable). */
  write(frame: Record<string, unknown>): void {
    this.sendText(JSON.stringify(frame));
  }

  sendText(text: string): void {
    const ws = this.socket;
    if (ws && ws.readyState === OPEN) ws.send(text);
  }
}

/** A frame's JSON text, or `bad_data` when its data cannot be encoded (a BigInt, a cycle): a rejection, never a throw. */
export function encode(frame: Record<string, unknown>): string | SwitchboardError {
  try {
    return JSON.stringify(frame);
  } catch (err) {
    return new SwitchboardError('bad_data', `${String(frame.op)}: data JSON cannot encode (${(err as Error).message})`);
  }
}

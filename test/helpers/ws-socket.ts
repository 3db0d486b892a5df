// The TCP socket under a `ws` client, for tests that must act below WebSocket: write pre-framed bytes. (A stalled
// consumer is ws.pause(), not a pause of this socket: ws resumes its socket itself whenever its receiver drains.)
// ws keeps its own reference private; its public 'upgrade' event hands over the handshake's response, whose `socket`
// is the connection the WebSocket then runs on.
import type { Socket } from 'node:net';
import type WebSocket from 'ws';

const sockets = new WeakMap<WebSocket, Socket>();

/** Keeps `ws`'s socket for socketOf(). Call it right after `new WebSocket(…)`, before the handshake can end. */
export function keepSocket<T extends WebSocket>(ws: T): T {
  ws.once('upgrade', (res) => sockets.set(ws, res.socket as Socket));
  return ws;
}

/** The socket of a WebSocket made with keepSocket() (TestClient's are), once it is open. */
export function socketOf(ws: WebSocket): Socket {
  const socket = sockets.get(ws);
  if (!socket) throw new Error('socketOf: this WebSocket was not passed to keepSocket() before its handshake ended');
  return socket;
}

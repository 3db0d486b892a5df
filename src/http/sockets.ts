// HttpSockets: every socket the HTTP port accepts holds a connection slot from `connection` to `close`, upgraded
// or not, so slow or idle HTTP clients count against --max-connections like WebSocket and TCP clients do.
// A socket over a limit is answered with a raw 503/429 and cut; a client that errs or times out is answered and cut.
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Admission, Refusal } from '../actors/admission.js';
import { refuseUpgrade } from '../transports/upgrade.js';

export class HttpSockets {
  private readonly refused = new WeakSet<Duplex>();

  constructor(
    private readonly admission: Admission,
    private readonly log: Logger,
  ) {}

  /** Wires the gate into `server`: slots on accept, answers on client errors and timeouts. */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.accept(socket));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.clientError(err, socket));
  }

  /** True for a socket refused on accept: its parsed requests and upgrades get no handler. */
  isRefused(socket: Duplex): boolean {
    return this.refused.has(socket);
  }

  private accept(socket: Socket): void {
    const refusal = this.admission.claim(socket);
    if (refusal) this.refuse(socket, refusal);
  }

  private refuse(socket: Socket, refusal: Refusal): void {
    this.refused.add(socket);
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'refused socket error'));
    refuseUpgrade(socket, refusal.status, refusal.statusText, refusal.message);
  }

  /** Malformed requests, oversize headers and header/request timeouts: answered once, then the socket is cut. */
  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    this.log.debug({ err: err.message, code: err.code }, 'http client error');
    if (this.refused.has(socket) || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, text] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : [400, 'Bad Request'];
    refuseUpgrade(socket, status, text, text.toLowerCase());
  }
}

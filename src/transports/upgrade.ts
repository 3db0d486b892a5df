// Refusing a raw HTTP socket before any protocol runs on it: shared by every upgrade path (WebSocket, lines, the
// actors page) and by the HTTP server's accept-time refusals; and the slot and token gate of the client upgrades.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { AuthFailure, requestToken } from '../auth/tokens.js';
import type { TokenVerifier } from '../auth/verifier.js';
import type { Grant } from '../auth/grant.js';
import type { ClientFaults } from '../log.js';

/** How long a refused socket may stay after its answer, for the peer to read it before we cut it. */
const REFUSED_LINGER_MS = 1000;

/**
 * Answers a raw HTTP socket (an upgrade request, or a socket refused on accept) with a plain HTTP error and drops
 * it: ended at once, cut when the peer ends too or after a short linger, so a peer that never closes holds nothing.
 */
export function refuseUpgrade(socket: Duplex, status: number, statusText: string, message: string, headers?: Record<string, string>): void {
  const body = JSON.stringify({ error: message });
  let extra = '';
  if (headers) for (const [name, value] of Object.entries(headers)) extra += `${name}: ${value}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${statusText}\r\nConnection: close\r\n${extra}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  const linger = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
  socket.once('end', () => socket.destroy());
  socket.resume(); // read (and drop) whatever the peer still sends, so its end is seen
}

/** What the upgrade gate needs of the broker: connection slots, the token verifier, the fault log, free names. */
export interface UpgradeGate {
  admission?: { claim(socket: Socket): { status: number; statusText: string; message: string } | undefined } | undefined;
  tokens?: TokenVerifier | null | undefined;
  faults?: ClientFaults | undefined;
  hub: { isNameFree(name: string): boolean };
}

/**
 * The checks every client upgrade (WebSocket, lines) makes after its own and before any actor exists: a connection
 * slot (503 server full, 429 too many from this IP), then the token (401 refused, 409 its fixed name is connected
 * already). `admit` gets the token's grant (undefined with auth off); a refusal answers the socket and drops it.
 */
export function gateUpgrade(core: UpgradeGate, req: IncomingMessage, socket: Duplex, log: Logger, refused: string, admit: (grant: Grant | undefined) => void): void {
  // The HTTP server took this socket's slot when it accepted it; it keeps that one (refusals are logged by Admission).
  const refusal = core.admission?.claim(req.socket);
  if (refusal) return refuseUpgrade(socket, refusal.status, refusal.statusText, refusal.message);
  const tokens = core.tokens;
  if (!tokens) return admit(undefined);
  tokens.verify(requestToken(req)).then(
    (grant) => {
      if (grant instanceof AuthFailure) {
        core.faults?.note('info', { addr: req.socket.remoteAddress, reason: grant.message }, `${refused}: unauthorized`);
        return refuseUpgrade(socket, 401, 'Unauthorized', grant.message);
      }
      // The token's name is fixed, so a second connection with it has no other name to fall back to.
      if (!core.hub.isNameFree(grant.name)) return refuseUpgrade(socket, 409, 'Conflict', `client '${grant.name}' is already connected`);
      admit(grant);
    },
    (err: unknown) => {
      log.error({ err }, 'token verification failed');
      refuseUpgrade(socket, 500, 'Internal Server Error', 'internal error');
    },
  );
}

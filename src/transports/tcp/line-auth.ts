// First-line authentication for the TCP line protocol. With tokens required, a TCP client's first line must be
// {"op":"auth","token":"<jwt>"} (an optional "id" is echoed): answered {"op":"ack"} and the connection joins as the
// token's client, or answered with an `unauthorized` error line and closed with 1008 before any actor exists.
import type { Socket } from 'node:net';
import { byeLine } from './chat.js';
import { CLOSE } from '../../protocol/errors.js';
import { ackFrame, errorFrame } from '../../protocol/frames.js';
import { ProtocolError } from '../../protocol/errors.js';
import { parseInboundJson } from '../../protocol/json.js';
import type { Grant } from '../../auth/grant.js';
import { AuthFailure } from '../../auth/tokens.js';
import type { TokenVerifier } from '../../auth/verifier.js';

export interface LineAuthOptions {
  lineLimit: number;
  /** How long the client has to send its auth line. */
  timeoutMs: number;
  /** Whether a client of this name is already connected (a token's name is fixed, so it cannot fall back). */
  nameTaken: (name: string) => boolean;
}

/** Resolves with the grant once the client has authenticated, or null after refusing and closing it. */
export async function authenticateFirstLine(socket: Socket, tokens: TokenVerifier, options: LineAuthOptions): Promise<Grant | null> {
  const line = await firstLine(socket, options);
  if (line === null) return refuse(socket, 'authentication required: the first line must be {"op":"auth","token":"<jwt>"}');
  // Not JSON or too deep: refused below like any other first line that is not an auth frame.
  const parsed = parseInboundJson(line);
  const frame = (typeof parsed === 'object' && parsed !== null && !(parsed instanceof ProtocolError) ? parsed : {}) as { op?: unknown; token?: unknown; id?: unknown };
  const id = typeof frame.id === 'string' || typeof frame.id === 'number' ? frame.id : undefined;
  if (frame.op !== 'auth' || typeof frame.token !== 'string') {
    return refuse(socket, 'authentication required: the first line must be {"op":"auth","token":"<jwt>"}', id);
  }
  const grant = await tokens.verify(frame.token);
  if (grant instanceof AuthFailure) return refuse(socket, grant.message, id);
  if (options.nameTaken(grant.name)) return refuse(socket, `client '${grant.name}' is already connected`, id, 'name_taken');
  if (socket.destroyed) return null;
  socket.write(JSON.stringify(ackFrame(id, { name: grant.name })) + '\n');
  return grant;
}

function refuse(socket: Socket, message: string, id?: string | number, code: 'unauthorized' | 'name_taken' = 'unauthorized'): null {
  if (!socket.destroyed) {
    const error = JSON.stringify(errorFrame(new ProtocolError(code, message, id)));
    socket.end(`${error}\n${byeLine(CLOSE.policy, code)}`, () => socket.destroy());
  }
  return null;
}

/**
 * The first line (without its line ending), or null when the socket closes, the line is too long or time runs out.
 * The socket is left paused with any bytes after the line pushed back, for the connection's own reader.
 */
function firstLine(socket: Socket, options: LineAuthOptions): Promise<string | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (line: string | null) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('end', onClose);
      resolve(line);
    };
    const onData = (chunk: Buffer) => {
      const nl = chunk.indexOf(0x0a);
      if (nl < 0) {
        chunks.push(chunk);
        size += chunk.length;
        if (size > options.lineLimit) done(null);
        return;
      }
      socket.pause();
      const rest = chunk.subarray(nl + 1);
      if (rest.length > 0) socket.unshift(rest);
      const line = Buffer.concat([...chunks, chunk.subarray(0, nl)]);
      if (line.length > options.lineLimit) return done(null);
      done(line.toString('utf8').replace(/\r$/, ''));
    };
    const onClose = () => done(null);
    const timer = setTimeout(() => done(null), options.timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('end', onClose);
    socket.resume();
  });
}

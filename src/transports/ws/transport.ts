// WebSocket transport: HTTP upgrade on /ws and /ws/<topic>, then the same Connection actor as TCP. The RFC 6455 server
// side is our own (docs/architecture.md says why), not ws's WebSocket: the handshake here, after the broker's gates;
// each connection's frames and close handshake in ./connection.ts.
import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { openConnection, type BrokerCore } from '../../actors/connection.js';
import { gateUpgrade, refuseUpgrade } from '../upgrade.js';
import { serveSocket, WsWire, type WsShared } from './connection.js';
import { AuthFailure, requestToken } from '../../auth/tokens.js';
import type { Grant } from '../../auth/grant.js';
import { parseTarget } from '../../protocol/target.js';
import { admitThroughHook } from '../../hooks/connect.js';

/** RFC 6455 §1.3: appended to the client's key, SHA-1 and base64 make Sec-WebSocket-Accept. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** A key is the base64 of 16 bytes (the check ws makes). */
const KEY = /^[+/0-9A-Za-z]{22}==$/;

/** Where the client asked to go: `/ws` or `/ws/<topic path>`, plus `name=` and `topics=`. */
export interface WsRequest {
  name?: string | undefined;
  topics: string[];
  token?: string | undefined;
}

export function parseWsPath(rawUrl: string | undefined): WsRequest | null {
  const url = parseTarget(rawUrl);
  if (!url) return null;
  let pathTopic: string | undefined;
  if (url.pathname === '/ws' || url.pathname === '/ws/') {
    pathTopic = undefined;
  } else if (url.pathname.startsWith('/ws/')) {
    try {
      pathTopic = decodeURIComponent(url.pathname.slice(4));
    } catch {
      pathTopic = url.pathname.slice(4); // invalid escapes: the topic check will refuse it with bad_topic
    }
  } else {
    return null;
  }
  const topics = (url.searchParams.get('topics') ?? '').split(',').filter((t) => t.length > 0);
  if (pathTopic !== undefined) topics.unshift(pathTopic);
  return { name: url.searchParams.get('name') ?? undefined, topics, token: url.searchParams.get('token') ?? undefined };
}

export class WsTransport {
  private readonly shared: WsShared;
  /** After close(): upgrades still in flight are answered 503 (as ws's server did once closed). */
  private closed = false;

  constructor(
    private readonly core: BrokerCore,
    private readonly log: Logger,
  ) {
    this.shared = { maxPayload: core.config.maxPayload, closeTimeoutMs: core.config.closeTimeoutMs };
  }

  /**
   * Handles an HTTP upgrade already routed to /ws… (the broker has checked the browser origin). Before any WebSocket
   * exists: the path (404), a connection slot (503 server full, 429 too many from this IP), then the token (401, 409).
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const target = parseWsPath(req.url);
    if (!target) return refuseUpgrade(socket, 404, 'Not Found', 'no WebSocket endpoint here; use /ws');
    gateUpgrade(this.core, req, socket, this.log, 'upgrade refused', (grant) => this.admit(req, socket, head, target, grant));
  }

  /**
   * `GET /ws` without upgrade headers: the status and JSON reason an upgrade from this request would get. A browser
   * cannot read the status of a refused WebSocket; the client library asks here instead. Connection limits (503,
   * 429) need no check here: they already answered this request's own socket when the server accepted it.
   */
  async diagnose(req: IncomingMessage): Promise<{ status: number; body: Record<string, unknown> }> {
    if (!parseWsPath(req.url)) return { status: 404, body: { error: 'no WebSocket endpoint here; use /ws' } };
    // A target with broken escapes (`?token=%`) is no request anyone can be told to retry.
    if (/%(?![0-9A-Fa-f]{2})/.test(req.url ?? '')) return { status: 400, body: { error: 'malformed percent-escape in the request target' } };
    const tokens = this.core.tokens;
    let token: Grant | undefined;
    if (tokens) {
      const grant = await tokens.verify(requestToken(req));
      if (grant instanceof AuthFailure) return { status: 401, body: { error: grant.message } };
      if (!this.core.hub.isNameFree(grant.name)) return { status: 409, body: { error: `client '${grant.name}' is already connected` } };
      token = grant;
    }
    const target = parseWsPath(req.url)!;
    const hooked = await admitThroughHook(this.core.hooks, { transport: 'ws', addr: `${req.socket.remoteAddress}:${req.socket.remotePort}`, name: target.name, topics: target.topics, token, http: req }, (n) => this.core.hub.isNameFree(n));
    if (hooked && !hooked.ok) return { status: hooked.status, body: { error: hooked.message } };
    return { status: 200, body: { ok: true, message: 'an upgrade would be accepted now' } };
  }

  /** The application backend's connect hook, when on: it may refuse (401/403, 503 when it fails) or say who connects. */
  private admit(req: IncomingMessage, socket: Duplex, head: Buffer, target: WsRequest, grant: Grant | undefined): void {
    const addr = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    admitThroughHook(this.core.hooks, { transport: 'ws', addr, name: target.name, topics: target.topics, token: grant, http: req }, (n) => this.core.hub.isNameFree(n)).then(
      (verdict) => {
        if (verdict === undefined) return this.handshake(req, socket, head, target, grant, undefined);
        if (!verdict.ok) {
          this.core.faults?.note('info', { addr: req.socket.remoteAddress, status: verdict.status, reason: verdict.message }, 'upgrade refused by the connect hook');
          return refuseUpgrade(socket, verdict.status, verdict.statusText, verdict.message);
        }
        this.handshake(req, socket, head, { ...target, topics: verdict.topics }, verdict.grant, verdict.meta);
      },
      (err: unknown) => {
        this.log.error({ err }, 'connect hook failed');
        refuseUpgrade(socket, 500, 'Internal Server Error', 'internal error');
      },
    );
  }

  /**
   * The opening handshake of RFC 6455 §4.2, with the statuses ws's server gave for the same requests (405 not GET,
   * 400 no `Upgrade: websocket` or a bad key), but 426 with `Sec-WebSocket-Version: 13` for another version (§4.4;
   * ws answered 400 and also took version 8). No subprotocol, no extension is ever agreed (permessage-deflate was
   * off). Made after the broker's gates, as before: a refused client never sees a WebSocket.
   */
  private handshake(req: IncomingMessage, socket: Duplex, head: Buffer, target: WsRequest, grant: Grant | undefined, meta: Record<string, unknown> | undefined): void {
    if (socket.destroyed) return;
    const refused = handshakeRefusal(req, this.closed);
    if (refused) return refuseUpgrade(socket, refused.status, STATUS_CODES[refused.status]!, refused.message, refused.headers);
    // The client already ended its side (ws's check): nobody to talk to.
    if (!socket.readable || !socket.writable) return void socket.destroy();
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']!}${GUID}`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    this.accept(socket, head, req, target, grant, meta);
  }

  private accept(socket: Duplex, head: Buffer, req: IncomingMessage, target: WsRequest, grant: Grant | undefined, meta: Record<string, unknown> | undefined): void {
    const addr = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const wire = new WsWire(socket, this.shared);
    const { reader, actor } = openConnection(this.core, wire, addr, { name: target.name, topics: target.topics, grant }, meta);
    wire.reader = reader;
    const tcp = socket as Socket;
    tcp.setTimeout?.(0);
    tcp.setNoDelay?.(true);
    // The bytes read with the request are the first frames: read after the actor starts, as the socket's own are.
    if (head.length > 0) socket.unshift(head);
    // Listeners shared by every connection (no closures per connection): each finds its wire by its socket.
    serveSocket(socket, wire);
    actor.start();
  }

  close(): void {
    this.closed = true;
  }
}

/** Why an upgrade request cannot become a WebSocket (the status and message to answer), or undefined when it can. */
export function handshakeRefusal(req: IncomingMessage, closing: boolean): { status: number; message: string; headers?: Record<string, string> } | undefined {
  if (closing) return { status: 503, message: 'the server is shutting down' };
  if (req.method !== 'GET') return { status: 405, message: 'Invalid HTTP method' };
  // RFC 6455 4.2.1: the handshake is an HTTP/1.1 (or later) GET.
  if (req.httpVersionMajor < 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor < 1)) return { status: 400, message: 'HTTP/1.1 or later required' };
  const upgrade = req.headers.upgrade;
  if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') return { status: 400, message: 'Invalid Upgrade header' };
  const connection = req.headers.connection;
  if (connection === undefined || !connection.split(',').some((token) => token.trim().toLowerCase() === 'upgrade')) return { status: 400, message: 'Invalid Connection header' };
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !KEY.test(key)) return { status: 400, message: 'Missing or invalid Sec-WebSocket-Key header' };
  if (req.headers['sec-websocket-version'] !== '13') return { status: 426, message: 'Missing or invalid Sec-WebSocket-Version header', headers: { 'Sec-WebSocket-Version': '13' } };
  return undefined;
}

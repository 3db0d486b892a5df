// WebSocket transport: HTTP upgrade on /ws and /ws/<topic>, then the same Connection actor as TCP.
// Writes are pre-framed bytes straight to the socket (encoded once per message, not once per client).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from 'pino';
import { openConnection, type BrokerCore } from '../../actors/connection.js';
import type { FrameReader } from '../../actors/reader.js';
import type { ConnectionRef } from '../../actors/connection.events.js';
import type { Wire } from '../../actors/mailbox.js';
import type { Outgoing } from '../../protocol/outgoing.js';
import { wsTextFrame, wsTextFrameSize, writeWsTextFrame } from './frame.js';
import { gateUpgrade, refuseUpgrade } from '../upgrade.js';
import { AuthFailure, requestToken } from '../../auth/tokens.js';
import type { Grant } from '../../auth/grant.js';
import { parseTarget } from '../../protocol/target.js';
import { admitThroughHook } from '../../hooks/connect.js';

class WsWire implements Wire {
  // Constants of every WebSocket wire, on the prototype (getters), not copied into each connection's object.
  get transport(): 'ws' {
    return 'ws';
  }
  get canPing(): boolean {
    return true;
  }
  get sharedEncoding(): boolean {
    return true;
  }

  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Duplex,
  ) {}

  encode(out: Outgoing): Buffer {
    return out.bytesFor(wsTextFrame);
  }

  encodedSize(out: Outgoing): number {
    return wsTextFrameSize(out);
  }

  encodeInto(out: Outgoing, buf: Buffer, at: number): number {
    return writeWsTextFrame(out, buf, at);
  }

  write(chunk: Buffer): boolean {
    // Safe beside ws's own sender: permessage-deflate is off, so ws never queues frames of its own.
    if (this.ws.readyState !== WebSocket.OPEN) return true;
    return this.socket.write(chunk);
  }

  onDrain(listener: () => void): void {
    this.socket.once('drain', listener);
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  ping(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.ping();
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/**
 * Each open WebSocket's reader, for the handlers shared by all of them (BrokerWebSocket calls them with the socket as
 * `this`): the reader leads to the link, the link to the actor. No record per connection beyond this entry.
 */
const readers = new WeakMap<WebSocket, FrameReader>();

/** The connection actor of a reader's link (openConnection sets it before the socket's listeners are attached). */
const actorOf = (reader: FrameReader): ConnectionRef => reader.link.actor!;

function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  const reader = readers.get(this)!;
  // A throw here would escape into the socket's data handler and take the process down: make it this actor's crash.
  try {
    if (isBinary) reader.binary(data.length);
    else reader.text(data.toString(), data.length);
  } catch (error) {
    actorOf(reader).send({ type: 'FAULT', error });
  }
}

function onPong(this: WebSocket): void {
  const reader = readers.get(this)!;
  reader.link.lastSeen = Date.now();
  actorOf(reader).send({ type: 'PONG' });
}

function onPing(this: WebSocket): void {
  readers.get(this)!.control();
}

function onClose(this: WebSocket, code: number, reason: Buffer): void {
  const actor = actorOf(readers.get(this)!);
  // After a forced close the actor has already finished; nobody is left to tell.
  if (actor.getSnapshot().status === 'active') actor.send({ type: 'SOCKET_CLOSED', code, reason: reason.toString() });
}

/** ws reports protocol violations (oversize → 1009, bad UTF-8 → 1007) here and closes the socket itself. */
function onError(this: WebSocket, err: Error): void {
  const reader = readers.get(this)!;
  reader.faults?.note('info', { client: reader.link.id, err: err.message }, 'websocket error');
}

/**
 * The broker's sockets (ws's `WebSocket` option): ws raises every socket event through `emit`, and this one hands the
 * five the broker handles straight to the functions above, so a socket carries no listener table of its own (~0.1 KB
 * per connection). Before its connection is set up (no reader yet), and for every other event, it is ws's own `emit`;
 * listeners added with `on` still hear their events.
 */
class BrokerWebSocket extends WebSocket {
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (!readers.has(this)) return super.emit(event, ...args);
    switch (event) {
      case 'message':
        onMessage.call(this, args[0] as Buffer, args[1] as boolean);
        break;
      case 'pong':
        onPong.call(this);
        break;
      case 'ping':
        onPing.call(this);
        break;
      case 'close':
        onClose.call(this, args[0] as number, args[1] as Buffer);
        break;
      case 'error':
        onError.call(this, args[0] as Error);
        break;
      default:
        return super.emit(event, ...args);
    }
    if (this.listenerCount(event) > 0) super.emit(event, ...args);
    return true;
  }
}

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
  private readonly wss: WebSocketServer;

  constructor(
    private readonly core: BrokerCore,
    private readonly log: Logger,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: core.config.maxPayload,
      perMessageDeflate: false,
      clientTracking: false,
      WebSocket: BrokerWebSocket,
    });
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

  private handshake(req: IncomingMessage, socket: Duplex, head: Buffer, target: WsRequest, grant: Grant | undefined, meta: Record<string, unknown> | undefined): void {
    if (socket.destroyed) return;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, socket, req, target, grant, meta));
  }

  private accept(ws: WebSocket, socket: Duplex, req: IncomingMessage, target: WsRequest, grant: Grant | undefined, meta: Record<string, unknown> | undefined): void {
    const addr = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const { reader, actor } = openConnection(this.core, new WsWire(ws, socket), addr, { name: target.name, topics: target.topics, grant }, meta);
    // From here its events reach the handlers every connection shares (BrokerWebSocket): each finds its connection
    // by its socket, no closure or listener per connection.
    readers.set(ws, reader);
    actor.start();
  }

  close(): void {
    this.wss.close();
  }
}

// TCP transport: the line protocol of a classic TCP chat room plus JSON lines, on the same Connection actor as WebSocket.
// Reader side: LineSplitter → plain-text command or JSON line → FrameReader. Writer side: TcpWire renders
// room traffic as chat lines and everything else as JSON lines.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { createServer, Socket, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { openConnection, type BrokerCore } from '../../actors/connection.js';
import type { Wire } from '../../actors/mailbox.js';
import { SocketWire } from '../socket-wire.js';
import type { FrameReader } from '../../actors/reader.js';
import type { ConnectionActor } from '../../actors/connection.machine.js';
import { byeLine, errorLine, greetingLines, messageLine, parseChatLine, presenceLine, showAddress, showId, shownInRoom, whoLines, type RoomLabel } from './chat.js';
import { WHO_LIMIT_MAX } from '../../protocol/frames.js';
import { CLOSE, ProtocolError } from '../../protocol/errors.js';
import { authenticateFirstLine } from './line-auth.js';
import type { Grant } from '../../auth/grant.js';
import { parseTarget } from '../../protocol/target.js';
import { topicError } from '../../protocol/topic.js';
import { gateUpgrade, refuseUpgrade } from '../upgrade.js';
import type { ServerFrame } from '../../protocol/frames.js';
import { LineSplitter, type LineEvent } from './lines.js';
import { admitThroughHook } from '../../hooks/connect.js';
import type { Encoding, Outgoing } from '../../protocol/outgoing.js';

/** Kinds of plain-text request whose reply is rendered as text rather than JSON. */
type LineRequest = 'who' | 'rename' | 'say' | 'error';

// Plain-text commands travel as ordinary frames with ids under this prefix; the wire renders their replies as
// text and strips the id. Random per process: a JSON line cannot forge one to get its reply rendered as text
// (a `who` of any topic as `addr:name` lines).
const LINE_ID_PREFIX = `\u0000line:${randomBytes(9).toString('base64')}:`;

function lineId(kind: LineRequest): string {
  return LINE_ID_PREFIX + kind;
}

function lineRequestOf(id: unknown): LineRequest | undefined {
  return typeof id === 'string' && id.startsWith(LINE_ID_PREFIX) ? (id.slice(LINE_ID_PREFIX.length) as LineRequest) : undefined;
}

const NOTHING = Buffer.alloc(0);

/**
 * Characters a terminal acts on, or that reorder or break a line: C1 controls (U+0085 NEL, U+009B CSI…), DEL, bidi
 * controls, line and paragraph separators. JSON.stringify leaves them raw; on a TCP line they are escaped instead.
 */
const TERMINAL_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

/**
 * A frame as one JSON line (the line protocol's framing of everything that is not room traffic): the same JSON value,
 * with what another user's text could make a terminal do escaped as `\uXXXX` (they only occur inside strings).
 */
const jsonLine: Encoding = (out) => {
  const safe = out.json.replace(TERMINAL_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return Buffer.from(safe + '\n');
};

/** What the TCP room rendering needs to know beyond one frame. */
export interface RoomView {
  /** `--room-addresses hide`: room lines show client ids where the classic room shows addresses. */
  hideAddresses?: boolean;
  /** Whether the room is over --room-announce-max (logins and logouts are not announced), and that bound. */
  quiet?: () => boolean;
  announceMax?: number;
}

export class TcpWire extends SocketWire implements Wire {
  readonly transport = 'tcp' as const;
  // TCP has no ping frame; dead peers are found by socket keepalive and the idle timeout.
  readonly canPing = false;
  private closing = false;

  private readonly label: RoomLabel;

  constructor(
    socket: Socket,
    private readonly room: string,
    private readonly view: RoomView = {},
    /** How long the last line may take to flush to a peer that does not read before the socket is cut. */
    closeTimeoutMs = 5000,
  ) {
    super(socket, closeTimeoutMs);
    this.label = view.hideAddresses ? showId : showAddress;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  encode(out: Outgoing): Buffer {
    const f = out.frame;
    switch (f.op) {
      case 'hello':
        return Buffer.from(greetingLines(f, this.room, this.view.quiet?.() ? this.view.announceMax : undefined));
      case 'msg':
        // Rendered once per broadcast, shared by every TCP client in the room (the key says which labelling).
        if (f.topic === this.room) return out.rendered(this.chatKey, () => messageLine(shownInRoom(out.sender), f.data, out.dataJson(), this.label));
        break;
      case 'event':
        if (f.topic === this.room) return out.rendered(this.chatKey, () => presenceLine(f, shownInRoom(out.sender), this.label));
        break;
      case 'ack':
      case 'error': {
        const kind = lineRequestOf(f.id);
        if (kind) return this.reply(kind, f, out);
        break;
      }
    }
    return out.bytesFor(jsonLine);
  }

  private get chatKey(): string {
    return this.view.hideAddresses ? 'chat-id' : 'chat';
  }

  private reply(kind: LineRequest, f: ServerFrame, out: Outgoing): Buffer {
    if (f.op === 'error') return Buffer.from(errorLine(f.code, f.message));
    if (kind === 'who') return Buffer.from(whoLines(out.roster ?? [], this.label, (f as { next?: string }).next, this.room));
    if (kind === 'rename') return Buffer.from('rename ok\n');
    // A said line is acknowledged by its own echo in the room, as in a classic TCP chat server.
    return NOTHING;
  }

  /** Writes a last line, then ends the stream once everything queued is flushed. */
  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.endWith(byeLine(code, reason));
  }

  terminate(): void {
    this.closing = true;
    this.socket.destroy();
  }
}

/**
 * The line protocol through the HTTP port: `GET /lines?room=<topic>[&name=<name>]` with `Upgrade: switchboard-lines`.
 * There the client speaks first, so it picks its room before it joins; on the TCP port the broker greets and joins
 * `--room` at connect, before any line could arrive.
 */
export const LINES_PATH = '/lines';
export const LINES_PROTOCOL = 'switchboard-lines';

/** Where a line client joins: its chat room (with presence) and the name it asked for. */
interface LineJoin {
  room: string;
  name?: string | undefined;
}

export class TcpTransport {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly core: BrokerCore,
    private readonly log: Logger,
  ) {
    // allowHalfOpen: a peer that sends its lines and then EOF (`nc -N`, a pipe) still gets its replies.
    this.server = createServer({ allowHalfOpen: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 }, (socket) =>
      this.accept(socket),
    );
  }

  /** Listens and resolves with the actual port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.log.error({ err }, 'tcp server error'));
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  /** Before any actor exists: a connection slot (else `bye … (1013)`), then, when tokens are required, the auth line. */
  private accept(socket: Socket): void {
    const { config, admission, tokens } = this.core;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'tcp socket error before join'));
    // The slot belongs to the socket: given back when it closes, however that happens (refusals are logged by Admission).
    const refusal = admission?.claim(socket);
    if (refusal) {
      socket.end(byeLine(CLOSE.tryAgainLater, refusal.message), () => socket.destroy());
      return;
    }
    if (!tokens) return this.admit(socket, undefined, { room: config.room });
    socket.pause();
    const nameTaken = (name: string) => !this.core.hub.isNameFree(name);
    authenticateFirstLine(socket, tokens, { lineLimit: config.lineLimit, timeoutMs: config.idleMs, nameTaken }).then(
      (grant) => {
        if (!grant) return;
        this.admit(socket, grant, { room: config.room });
      },
      (err: unknown) => {
        this.log.error({ err }, 'tcp authentication failed');
        socket.destroy();
      },
    );
  }

  /**
   * An HTTP upgrade routed to LINES_PATH (the broker has checked the browser origin). Before any actor exists: the
   * protocol and room (400), a connection slot (503, 429), the token (401, 409); then `101` and the line protocol.
   */
  upgrade(req: IncomingMessage, duplex: Duplex, head: Buffer): void {
    if (!(duplex instanceof Socket)) return refuseUpgrade(duplex, 500, 'Internal Server Error', 'not a TCP socket');
    const socket = duplex;
    if (req.headers.upgrade?.toLowerCase() !== LINES_PROTOCOL) {
      return refuseUpgrade(socket, 400, 'Bad Request', `${LINES_PATH} speaks the line protocol: send Upgrade: ${LINES_PROTOCOL}`);
    }
    const query = parseTarget(req.url)?.searchParams ?? new URLSearchParams();
    const join: LineJoin = { room: query.get('room') ?? this.core.config.room, name: query.get('name') ?? undefined };
    const roomError = topicError(join.room);
    if (roomError) return refuseUpgrade(socket, 400, 'Bad Request', `room must be a topic: ${roomError}`);
    gateUpgrade(this.core, req, socket, this.log, 'lines upgrade refused', (grant) => this.admitUpgrade(req, socket, head, grant, join));
  }

  /** The connect hook on the TCP port: refused, the client reads why in an error line and a bye (1008, or 1013 when the backend failed). */
  private admit(socket: Socket, grant: Grant | undefined, join: LineJoin): void {
    const hooks = this.core.hooks;
    if (!hooks?.has('connect')) {
      this.open(socket, grant, join);
      socket.resume();
      return;
    }
    socket.pause();
    const addr = `${socket.remoteAddress}:${socket.remotePort}`;
    admitThroughHook(hooks, { transport: 'tcp', addr, name: join.name, topics: [join.room], token: grant }, (n) => this.core.hub.isNameFree(n)).then(
      (verdict) => {
        if (socket.destroyed) return;
        if (verdict && !verdict.ok) {
          this.core.faults?.note('info', { addr, status: verdict.status, reason: verdict.message }, 'tcp connection refused by the connect hook');
          const code = verdict.status === 503 ? 'unavailable' : verdict.status === 401 ? 'unauthorized' : verdict.status === 409 ? 'name_taken' : 'forbidden';
          socket.end(errorLine(code, verdict.message) + byeLine(verdict.status === 503 ? CLOSE.tryAgainLater : CLOSE.policy, verdict.message), () => socket.destroy());
          return;
        }
        this.open(socket, verdict ? verdict.grant : grant, join, verdict?.meta);
        socket.resume();
      },
      (err: unknown) => {
        this.log.error({ err }, 'connect hook failed');
        socket.destroy();
      },
    );
  }

  /** The connect hook on the /lines upgrade: refused as a WebSocket upgrade is (401/403/409/503). */
  private admitUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, grant: Grant | undefined, join: LineJoin): void {
    const addr = `${socket.remoteAddress}:${socket.remotePort}`;
    admitThroughHook(this.core.hooks, { transport: 'tcp', addr, name: join.name, topics: [join.room], token: grant, http: req }, (n) => this.core.hub.isNameFree(n)).then(
      (verdict) => {
        if (verdict === undefined) return this.switchProtocols(socket, head, grant, join);
        if (!verdict.ok) return refuseUpgrade(socket, verdict.status, verdict.statusText, verdict.message);
        this.switchProtocols(socket, head, verdict.grant, join, verdict.meta);
      },
      (err: unknown) => {
        this.log.error({ err }, 'connect hook failed');
        refuseUpgrade(socket, 500, 'Internal Server Error', 'internal error');
      },
    );
  }

  private switchProtocols(socket: Socket, head: Buffer, grant: Grant | undefined, join: LineJoin, meta?: Record<string, unknown>): void {
    if (socket.destroyed) return;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${LINES_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n`);
    // Lines the client sent right behind its request are the connection's first lines.
    if (head.length > 0) socket.unshift(head);
    this.open(socket, grant, join, meta);
  }

  private open(socket: Socket, grant: Grant | undefined, join: LineJoin, meta?: Record<string, unknown>): void {
    const { config } = this.core;
    const addr = `${socket.remoteAddress}:${socket.remotePort}`;
    const hub = this.core.hub;
    const wire = new TcpWire(socket, join.room, {
      hideAddresses: config.roomAddresses === 'hide',
      // Only the broker's own room (--room) goes quiet when crowded; a room chosen through /lines is announced as usual.
      quiet: () => join.room === config.room && hub.roomIsQuiet(),
      announceMax: config.roomAnnounceMax,
    }, config.closeTimeoutMs);
    const { link, reader, actor } = openConnection(this.core, wire, addr, { name: join.name, presenceTopics: [join.room], grant }, meta);
    const splitter = new LineSplitter(config.lineLimit);
    const handle = (events: LineEvent[]) => {
      for (const e of events) {
        if (wire.isClosing) return; // the stream is ending: later lines have nobody to answer them
        this.line(e, reader, actor, join.room);
      }
    };
    socket.on('data', (chunk: Buffer) => {
      // A throw here would escape into the socket's data handler and take the process down: make it this actor's crash.
      try {
        handle(splitter.push(chunk));
      } catch (error) {
        actor.send({ type: 'FAULT', error });
      }
    });
    // EOF from the peer: its last unterminated line counts, then it is a quit (replies are flushed first).
    socket.on('end', () => {
      handle(splitter.end());
      actor.send({ type: 'QUIT' });
    });
    socket.on('error', (err) => this.log.debug({ client: link.id, err: err.message }, 'tcp socket error'));
    socket.on('close', (hadError) => {
      this.sockets.delete(socket);
      actor.send({ type: 'SOCKET_CLOSED', code: hadError ? CLOSE.abnormal : CLOSE.normal, reason: hadError ? 'connection reset' : 'closed by peer' });
    });
    actor.start();
  }

  private line(e: LineEvent, reader: FrameReader, actor: ConnectionActor, room: string): void {
    const { lineLimit } = this.core.config;
    switch (e.kind) {
      case 'too_long':
        reader.reject(new ProtocolError('too_large', `line longer than ${lineLimit} bytes`, lineId('error')));
        actor.send({ type: 'CLOSE', code: CLOSE.tooLarge, reason: 'line too long', cause: 'leave' });
        return;
      case 'bad_utf8':
        // The line is skipped and the connection stays open, like any other bad frame (counted against --rate too:
        // a flood of them was answered line for line, never limited).
        reader.unreadable(new ProtocolError('bad_frame', 'line is not valid UTF-8; it was skipped', lineId('error')), e.bytes);
        return;
      case 'line': {
        const cmd = parseChatLine(e.text);
        switch (cmd.kind) {
          case 'blank':
            return;
          case 'json':
            return reader.text(e.text, e.bytes);
          case 'who':
            // The room's members (docs/protocol.md): addresses of its TCP clients only; the token's grant applies.
            return reader.parsed({ op: 'who', topic: room, id: lineId('who'), limit: WHO_LIMIT_MAX }, e.bytes);
          case 'rename':
            return reader.parsed({ op: 'rename', name: cmd.name, id: lineId('rename') }, e.bytes);
          case 'quit':
            return reader.parsed({ op: 'quit' }, e.bytes);
          case 'say':
            return reader.parsed({ op: 'pub', topic: room, data: cmd.text, id: lineId('say') }, e.bytes);
        }
      }
    }
  }

  /** Stops accepting; open connections are closed by the supervisor's shutdown. */
  close(): void {
    this.server.close();
  }

  /** Cuts whatever is still open after the graceful shutdown had its time. */
  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}

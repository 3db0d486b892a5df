// ActorsPage: GET /inspect (the live actors page, static files from web/) and its WebSocket /inspect/ws.
// While at least one page is open the ActorTable listens to the actor tree; pushes are batched:
// state changes at most every 100 ms, everything else (last event, mailbox depth, subscriptions) once a second.
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from 'pino';
import type { ActorTree } from '../actors/tree.js';
import { connectionMachine } from '../actors/connection.machine.js';
import { supervisorMachine } from '../actors/supervisor.machine.js';
import { HttpError, type Router } from '../transports/router.js';
import { refuseUpgrade } from '../transports/upgrade.js';
import { parseTarget } from '../protocol/target.js';
import { ActorTable, type ActorRow } from './actors.js';
import { machineChart } from './chart.js';

const URGENT_MS = 100;
const SCAN_EVERY_TICKS = 10;
/** A viewer with this much unsent data skips updates (and gets a full table once it catches up). */
const VIEWER_BACKLOG_BYTES = 1024 * 1024;
/** Each open page costs a full table push a second; a handful of operators is plenty. */
const MAX_VIEWERS = 20;
const WEB_DIR = new URL('../../web/inspect/', import.meta.url);

const FILES: Record<string, { file: string; type: string }> = {
  '/inspect': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/inspect/inspect.js': { file: 'inspect.js', type: 'text/javascript; charset=utf-8' },
  '/inspect/inspect.css': { file: 'inspect.css', type: 'text/css; charset=utf-8' },
};

/** Decides whether a request may see the actors page (admin token when auth is on). */
export type AdminCheck = (req: IncomingMessage, url: URL) => boolean | Promise<boolean>;

export interface ActorsPageOptions {
  /** The supervisor and its connection actors. */
  actors: ActorTree;
  log: Logger;
  authorize: AdminCheck;
  /** When the supervisor started (the page dates its row from it). */
  startedAt?: number;
}

interface Viewer {
  selected: string | null;
  sentSeq: number;
  /** Missed an update while congested: gets every row on the next push. */
  stale: boolean;
}

type ViewerMessage = { type: 'select'; id: string | null };

export class ActorsPage {
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4096, clientTracking: false });
  private readonly viewers = new Map<WebSocket, Viewer>();
  readonly table = new ActorTable();
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  /** Per row, what the viewers were last sent, so the periodic scan only pushes rows that moved. */
  private readonly sent = new Map<string, string>();
  private readonly charts = { connection: machineChart(connectionMachine), supervisor: machineChart(supervisorMachine) };

  constructor(private readonly options: ActorsPageOptions) {}

  mount(router: Router, upgrades: Map<string, (req: IncomingMessage, socket: Duplex, head: Buffer) => void>): void {
    for (const [path, { file, type }] of Object.entries(FILES)) {
      const guarded = path === '/inspect';
      router.on('GET', path, (req, res, url) => this.serveFile(req, res, url, file, type, guarded));
    }
    upgrades.set('/inspect/ws', (req, socket, head) => void this.upgrade(req, socket, head));
  }

  get viewerCount(): number {
    return this.viewers.size;
  }

  close(): void {
    for (const ws of this.viewers.keys()) ws.close(1001, 'server shutting down');
    this.stopWatching();
    this.wss.close();
  }

  private async serveFile(req: IncomingMessage, res: ServerResponse, url: URL, file: string, type: string, guarded: boolean): Promise<void> {
    if (guarded && !(await this.options.authorize(req, url))) throw new HttpError(401, 'the live actors page needs the admin token (?token=…)', 'unauthorized');
    let body: Buffer;
    try {
      body = await readFile(new URL(file, WEB_DIR));
    } catch (err) {
      this.options.log.error({ err, file }, 'live actors page file missing');
      throw new HttpError(500, `page file ${file} is missing from web/`, 'internal');
    }
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length, 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = parseTarget(req.url);
    if (!url) return refuseUpgrade(socket, 400, 'Bad Request', 'the request target must be a path');
    let allowed: boolean;
    try {
      allowed = await this.options.authorize(req, url);
    } catch (err) {
      this.options.log.error({ err }, 'inspect authorization failed');
      allowed = false;
    }
    if (!allowed) return refuseUpgrade(socket, 401, 'Unauthorized', 'the live actors page needs the admin token (?token=…)');
    if (this.viewers.size >= MAX_VIEWERS) return refuseUpgrade(socket, 503, 'Service Unavailable', `at most ${MAX_VIEWERS} live actors pages at once`);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.welcome(ws));
  }

  private welcome(ws: WebSocket): void {
    const viewer: Viewer = { selected: null, sentSeq: -1, stale: false };
    this.viewers.set(ws, viewer);
    this.startWatching();
    this.table.sweep();
    const rows = this.allRows();
    // The first viewer sets the baseline; later ones must not, or earlier viewers would miss pending changes.
    if (this.viewers.size === 1) for (const row of rows) this.sent.set(row.id, signature(row));
    ws.send(JSON.stringify({ type: 'hello', now: Date.now(), charts: this.charts, rows }));
    ws.on('message', (data) => this.onViewerMessage(ws, viewer, data.toString()));
    ws.on('close', () => {
      this.viewers.delete(ws);
      if (this.viewers.size === 0) this.stopWatching();
    });
    ws.on('error', (err) => this.options.log.debug({ err: err.message }, 'inspect viewer socket error'));
  }

  private onViewerMessage(ws: WebSocket, viewer: Viewer, text: string): void {
    let msg: ViewerMessage;
    try {
      msg = JSON.parse(text) as ViewerMessage;
    } catch {
      msg = null as unknown as ViewerMessage;
    }
    if (typeof msg !== 'object' || msg === null) {
      ws.send(JSON.stringify({ type: 'error', code: 'bad_frame', message: 'expected a JSON object' }));
      return;
    }
    if (msg.type !== 'select') {
      ws.send(JSON.stringify({ type: 'error', code: 'unknown_op', message: `unknown message type '${String(msg.type)}'` }));
      return;
    }
    viewer.selected = typeof msg.id === 'string' ? msg.id : null;
    viewer.sentSeq = -1;
    this.sendDetail(ws, viewer);
  }

  private startWatching(): void {
    if (this.table.attached) return;
    this.table.attach(this.options.actors, this.options.startedAt);
    this.timer = setInterval(() => this.tick(), URGENT_MS);
    this.timer.unref();
  }

  private stopWatching(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.table.detach();
    this.sent.clear();
  }

  private tick(): void {
    const now = Date.now();
    this.table.sweep(now);
    const scan = ++this.ticks % SCAN_EVERY_TICKS === 0;
    const ids = scan ? [...this.table.ids()] : [...this.table.urgent];
    this.table.urgent.clear();
    const rows: ActorRow[] = [];
    for (const id of ids) {
      const row = this.table.row(id);
      if (!row) continue;
      const sig = signature(row);
      if (this.sent.get(id) === sig) continue;
      this.sent.set(id, sig);
      rows.push(row);
    }
    const removed = this.table.removed;
    this.table.removed = [];
    for (const id of removed) this.sent.delete(id);
    const update = rows.length > 0 || removed.length > 0 ? JSON.stringify({ type: 'rows', now, rows, removed }) : undefined;
    let full: string | undefined;
    for (const [ws, viewer] of this.viewers) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (ws.bufferedAmount > VIEWER_BACKLOG_BYTES) {
        if (update) viewer.stale = true; // skip rather than queue without bound; catch up with a full table later
        continue;
      }
      if (viewer.stale) {
        full ??= JSON.stringify({ type: 'rows', now, rows: this.allRows(), removed, full: true });
        ws.send(full);
        viewer.stale = false;
      } else if (update) {
        ws.send(update);
      }
      this.sendDetail(ws, viewer);
    }
  }

  private sendDetail(ws: WebSocket, viewer: Viewer): void {
    if (viewer.selected === null) return;
    // A viewer that does not read gets nothing more (each `select` asked for a detail: they queued without bound);
    // sentSeq stays as it was, so the next tick after it drains sends the selection's detail.
    if (ws.bufferedAmount > VIEWER_BACKLOG_BYTES) return;
    const recent = this.table.recent(viewer.selected);
    if (!recent) {
      if (viewer.sentSeq !== -2) ws.send(JSON.stringify({ type: 'detail', id: viewer.selected, gone: true }));
      viewer.sentSeq = -2;
      return;
    }
    if (recent.seq === viewer.sentSeq) return;
    viewer.sentSeq = recent.seq;
    ws.send(JSON.stringify({ type: 'detail', id: viewer.selected, row: this.table.row(viewer.selected), recent: recent.recent }));
  }

  private allRows(): ActorRow[] {
    const rows: ActorRow[] = [];
    for (const id of this.table.ids()) {
      const row = this.table.row(id);
      if (row) rows.push(row);
    }
    return rows;
  }
}

/** What a viewer can see change in a row (age is computed in the browser). */
function signature(row: ActorRow): string {
  return `${row.state}|${row.status}|${row.name}|${row.subscriptionCount}|${row.mailboxDepth}|${row.lastEvent?.at ?? 0}|${row.lastEvent?.what ?? ''}`;
}

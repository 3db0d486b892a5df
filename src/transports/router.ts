// Router: a small method + path table for the HTTP port (the API, pages, SSE and the actors page all mount on it).
// Below http/ and inspect/ so both can use it. Every answer is JSON unless a route says otherwise.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseTarget } from '../protocol/target.js';

export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = 'bad_request',
  ) {
    super(message);
  }
}

export class Router {
  private readonly routes = new Map<string, Map<string, Handler>>();
  /** Asked before any route: a refusal (answered like a route's HttpError), or undefined to go on. */
  private gate: ((req: IncomingMessage, pathname: string) => HttpError | undefined) | undefined;

  /** Sets the check every request passes before its route (the broker's: is this request addressed to me?). */
  guard(gate: (req: IncomingMessage, pathname: string) => HttpError | undefined): this {
    this.gate = gate;
    return this;
  }

  on(method: string, path: string, handler: Handler): this {
    let byMethod = this.routes.get(path);
    if (!byMethod) this.routes.set(path, (byMethod = new Map()));
    byMethod.set(method, handler);
    return this;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = parseTarget(req.url);
    const byMethod = url && this.routes.get(url.pathname);
    try {
      if (!url) throw new HttpError(400, 'the request target must be a path: /<path>[?<query>]', 'bad_request');
      const refused = this.gate?.(req, url.pathname);
      if (refused) throw refused;
      if (!byMethod) throw new HttpError(404, `no route ${url.pathname}`, 'not_found');
      const handler = byMethod.get(req.method ?? 'GET') ?? (req.method === 'HEAD' ? byMethod.get('GET') : undefined);
      if (!handler) {
        res.setHeader('Allow', [...byMethod.keys()].join(', '));
        throw new HttpError(405, `${req.method} not allowed on ${url.pathname}`, 'method_not_allowed');
      }
      await handler(req, res, url);
    } catch (err) {
      if (res.headersSent || req.socket.destroyed) {
        res.destroy(); // answered already, or nobody left to answer
        return;
      }
      if (!(err instanceof HttpError)) throw err;
      // Refused before its body was read: close instead of draining it (the declared body may be a gigabyte).
      if (!req.complete) res.setHeader('Connection', 'close');
      sendJson(res, err.status, { error: err.code, message: err.message });
      if (!req.complete) res.once('finish', () => req.socket.destroy());
    }
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

/** Reads a request body up to `limit` bytes; over it → 413 without buffering the rest. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new HttpError(413, `body larger than ${limit} bytes`, 'too_large'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, `body larger than ${limit} bytes`, 'too_large'));
        // Stop here: the router answers with Connection: close and cuts the socket instead of draining the rest.
        req.removeAllListeners('data');
        req.pause();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    // The client went away mid-body (an aborted upload): its fault, answered to nobody, never a broker error.
    req.on('error', () => reject(new HttpError(400, 'the request body was cut off before its end', 'aborted')));
  });
}

// HTTP API: server-side publish (how a business server pushes live data and alarms) and the live registry views.
// Publishes go through the supervisor's API_PUBLISH event, so they are ordered with every client's pub.
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { BrokerCore } from '../actors/connection.js';
import type { Link } from '../actors/link.js';
import type { Config } from '../config.js';
import type { PublishResult } from '../engine/memory.js';
import { cursorAfter, numericId, parseCursor } from '../engine/roster.js';
import { topicError } from '../protocol/topic.js';
import { HttpError, readBody, sendJson, type Handler, type Router } from '../transports/router.js';
import type { TokenVerifier } from '../auth/verifier.js';
import { adminVerdict } from '../auth/admin.js';
import { parseInboundJson } from '../protocol/json.js';
import { ProtocolError } from '../protocol/errors.js';
import { idempotencyKey, registerServerApi } from './server-api.js';
import type { NodeCalls } from '../engine/redis/calls.js';

/** Longest list /api/clients and /api/topics return unless `?limit=` says otherwise (up to LIST_MAX). */
const LIST_DEFAULT = 1000;
const LIST_MAX = 100_000;

/**
 * The one gate in front of every /api/* route: throws a 401 HttpError when the request may not use the API.
 * `Authorization: Bearer <x>` where x is the `--api-key`, or (with client auth on) a JWT whose `admin` claim is true;
 * a valid token without it gets 403. With neither an API key nor client auth configured, the API is open.
 */
export async function authorizeApi(req: IncomingMessage, config: Pick<Config, 'apiKey'>, tokens: TokenVerifier | null = null): Promise<void> {
  const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  const verdict = await adminVerdict(match?.[1]!.trim(), config, tokens);
  if (verdict === 'open' || verdict === 'admin') return;
  if (verdict === 'not_admin') throw new HttpError(403, 'this token has no admin claim', 'forbidden');
  const wanted = config.apiKey !== undefined ? 'Authorization: Bearer <api key>' : 'Authorization: Bearer <token with admin: true>';
  throw new HttpError(401, match ? 'wrong API key or token' : `this API needs ${wanted}`, 'unauthorized');
}

/** `calls`: on a cluster, how the server API reaches clients of other nodes. */
export function registerApi(router: Router, core: BrokerCore, log: Logger, calls?: NodeCalls): void {
  const { config, hub, supervisor } = core;
  const guarded =
    (handler: Handler): Handler =>
    async (req, res, url) => {
      try {
        await authorizeApi(req, config, core.tokens ?? null);
      } catch (err) {
        if (err instanceof HttpError && err.status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
        throw err;
      }
      await handler(req, res, url);
    };

  router.on('POST', '/api/publish', guarded(async (req, res) => {
    if (supervisor.getSnapshot().value !== 'running') throw new HttpError(503, 'server shutting down', 'unavailable');
    let topic: string;
    let data: unknown;
    let key: string | undefined;
    try {
      ({ topic, data, key } = parsePublishBody(await readBody(req, config.maxPayload)));
      key ??= idempotencyKey(req.headers['idempotency-key']);
    } catch (err) {
      // An aborted upload or a bad body is the client's fault: a debug line (throttled), never an error.
      if (err instanceof HttpError) core.faults?.note('debug', { addr: req.socket.remoteAddress, status: err.status, error: err.code, reason: err.message }, 'api publish refused: bad or cut-off body');
      throw err;
    }
    // A stopped supervisor takes no events, so it would never reply.
    if (supervisor.getSnapshot().status !== 'active') throw new HttpError(503, 'server shutting down', 'unavailable');
    // Shutdown may have begun while the body arrived.
    if (supervisor.getSnapshot().value !== 'running') throw new HttpError(503, 'server shutting down', 'unavailable');
    // Straight to the engine, like a client's pub: the supervisor handles lifecycle, not publishes.
    let result: PublishResult | ProtocolError;
    try {
      result = await hub.publishAsync(topic, data, key); // once per idempotency key: the engine keeps the keys
    } catch (err) {
      log.error({ err, topic }, 'api publish failed');
      throw new HttpError(500, 'internal error', 'internal');
    }
    // Data that cannot be encoded (nested too deep for the encoder) is refused before anything is stored.
    if (result instanceof ProtocolError) throw new HttpError(result.code === 'unavailable' ? 503 : result.code === 'outcome_unknown' ? 504 : 400, result.message, result.code);
    sendJson(res, 200, result);
  }));

  router.on('GET', '/api/clients', guarded((_req, res, url) => {
    const limit = listLimit(url);
    // Paged by client id, as `who` is (roster.ts cursors), not by position: a client that leaves between two pages
    // does not push another one out of the walk. In id order (a connect hook may admit a client after one that
    // connected later).
    const after = clientCursor(url);
    const rest = [...hub.sessions()].filter((link) => numericId(link.id) > after).sort((x, y) => numericId(x.id) - numericId(y.id));
    const clients = rest.slice(0, limit).map(clientView);
    const last = clients.at(-1);
    sendJson(res, 200, rest.length > limit && last ? { total: hub.sessionCount, clients, next: cursorAfter(last.id) } : { total: hub.sessionCount, clients });
  }));

  router.on('GET', '/api/topics', guarded((_req, res, url) => {
    const limit = listLimit(url);
    const offset = listOffset(url);
    const { total, topics } = hub.topics(offset + limit);
    const page = topics.slice(offset);
    sendJson(res, 200, offset + page.length < total ? { total, topics: page, next: String(offset + page.length) } : { total, topics: page });
  }));

  registerServerApi(router, core, guarded, log, calls);
}

/** Validates a publish body; bad input → 400 carrying the protocol's error code. */
export function parsePublishBody(body: Buffer): { topic: string; data: unknown; key: string | undefined } {
  const value = parseInboundJson(body.toString('utf8'), 'body');
  if (value instanceof ProtocolError) throw new HttpError(400, `${value.message}; send {"topic": "...", "data": ...}`, 'bad_frame');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'body must be a JSON object {"topic": "...", "data": ...}', 'bad_frame');
  }
  const { topic } = value as Record<string, unknown>;
  const err = topicError(topic);
  if (err) throw new HttpError(400, err, 'bad_topic');
  if (!('data' in value)) throw new HttpError(400, 'publish needs data', 'bad_frame');
  return { topic: topic as string, data: (value as { data: unknown }).data, key: idempotencyKey((value as { idempotencyKey?: unknown }).idempotencyKey) };
}

/**
 * `?cursor=` of /api/topics: the `next` of the previous page (an offset into the topics, which are never reordered:
 * at most `--max-topics` of them, plus those only subscribed to; a topic forgotten meanwhile shifts the rest by one).
 */
function listOffset(url: URL): number {
  const raw = url.searchParams.get('cursor');
  if (raw === null) return 0;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw new HttpError(400, 'cursor must be the next of a previous page', 'bad_request');
  return n;
}

/** `?cursor=` of /api/clients: the numeric id the previous page ended at (roster.ts `cursorAfter`); 0: the start. */
function clientCursor(url: URL): number {
  const raw = url.searchParams.get('cursor');
  if (raw === null) return 0;
  const after = parseCursor(raw);
  if (after === null) throw new HttpError(400, 'cursor must be the next of a previous page', 'bad_request');
  return after;
}

function listLimit(url: URL): number {
  const raw = url.searchParams.get('limit');
  if (raw === null) return LIST_DEFAULT;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1 || n > LIST_MAX) throw new HttpError(400, `limit must be 1 to ${LIST_MAX}`, 'bad_request');
  return n;
}

function clientView(link: Link) {
  return {
    ...link.info(),
    state: link.state,
    subscriptions: [...link.subscriptions],
    presence: [...link.presence],
    mailbox: { depth: link.mailbox.depth, dropped: link.mailbox.dropped },
    framesIn: link.framesIn,
    bytesIn: link.bytesIn,
    framesOut: link.mailbox.framesOut,
    bytesOut: link.mailbox.bytesOut,
    connectedAt: new Date(link.connectedAt).toISOString(),
  };
}

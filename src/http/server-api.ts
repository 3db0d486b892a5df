// The server API beyond a single publish (docs/integration.md, "Server API"): batch publish with one result each,
// publish idempotency keys (kept by the engine: in Redis on a cluster), disconnecting a client, server-side
// subscribe and unsubscribe (of a client on any node: client-commands.ts), and `who`
// (presence) of a topic or of the whole broker, paginated. Every route sits behind the same admin gate as /api/publish.
import type { Logger } from 'pino';
import type { BrokerCore } from '../actors/connection.js';
import type { Engine, Session } from '../engine/engine.js';
import type { NodeCalls } from '../engine/redis/calls.js';
import { ClientCommands, type ClientCommand, type CommandErrorCode, type CommandOutcome } from './client-commands.js';
import type { Link } from '../actors/link.js';
import { Grant } from '../auth/grant.js';
import { CLOSE, ProtocolError, type FrameId } from '../protocol/errors.js';
import { publishKeyError, PUBLISH_KEY_MAX, WHO_LIMIT_MAX, type ServerFrame } from '../protocol/frames.js';
import { parseInboundJson } from '../protocol/json.js';
import { filterError, topicError } from '../protocol/topic.js';
import type { Outgoing } from '../protocol/outgoing.js';
import { HttpError, readBody, sendJson, type Handler, type Router } from '../transports/router.js';

/** Messages one batch publish may carry. */
export const BATCH_MAX = 1000;

/**
 * The API's own session, used only to ask the engine `who`: the engine answers it as it answers a client (across
 * the cluster on Redis), and the answer is handed to the waiting HTTP request by its id. One per request: the Redis
 * engine runs one session's requests one after another, so a shared one made each `who` wait for every earlier one
 * (on a hung Redis, a whole --redis-timeout-ms each). How many wait on Redis at once is bounded there all the same.
 */
class ApiAsker implements Session {
  readonly id = 'c0';
  name = 'server-api';
  readonly addr = 'api';
  readonly transport = 'ws' as const;
  readonly subscriptions = new Set<string>();
  readonly presence = new Set<string>();
  grant: Grant | undefined = new Grant({ name: 'server-api', pub: null, sub: null, admin: true });
  nameFixed = true;
  rate = undefined;
  renames = undefined;
  readonly state = 'online';
  private next = 0;
  private readonly waiting = new Map<FrameId, (frame: ServerFrame) => void>();
  readonly mailbox = {
    push: (out: Outgoing) => this.send(out.frame),
    capacity: Number.MAX_SAFE_INTEGER,
    depth: 0,
    byteCapacity: Number.MAX_SAFE_INTEGER,
    bytes: 0,
    acceptsDirect: () => false,
    tail: undefined,
    replaceTail: () => undefined,
  };

  hold(): void {}

  watch(): void {}

  send(frame: ServerFrame): boolean {
    const id = (frame as { id?: FrameId }).id;
    const resolve = id === undefined ? undefined : this.waiting.get(id);
    if (resolve) {
      this.waiting.delete(id!);
      resolve(frame);
    }
    return true;
  }

  info() {
    return { id: this.id, name: this.name, addr: this.addr, transport: this.transport };
  }

  publicInfo() {
    return { id: this.id, name: this.name, transport: this.transport };
  }

  /** One `who` page through the engine. */
  who(hub: Engine<Link>, topic: string | undefined, limit: number, cursor: string | undefined): Promise<ServerFrame> {
    const id = `api${++this.next}`;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      (hub as unknown as Engine<Session>).handle(this, { op: 'who', id, ...(topic !== undefined && { topic }), limit, ...(cursor !== undefined && { cursor }) });
    });
  }
}

/** Reads a JSON object body; bad input → 400 with the protocol's code. */
async function jsonBody(req: Parameters<Handler>[0], limit: number): Promise<Record<string, unknown>> {
  const value = parseInboundJson((await readBody(req, limit)).toString('utf8'), 'body');
  if (value instanceof ProtocolError) throw new HttpError(400, value.message, 'bad_frame');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'body must be a JSON object', 'bad_frame');
  return value as Record<string, unknown>;
}

/** An idempotency key: a string of 1 to 128 characters, or absent. */
export function idempotencyKey(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  // The same rule as a client's `pub` key (one check: the keys are shared), named as the API names it.
  if (publishKeyError(value) !== null) throw new HttpError(400, `idempotencyKey must be a string of 1 to ${PUBLISH_KEY_MAX} characters`, 'bad_frame');
  return value as string;
}

/** The client a request names (`client`: an id or a name). */
function clientOf(body: Record<string, unknown>): string {
  if (typeof body.client !== 'string' || body.client.length === 0 || body.client.length > 64) throw new HttpError(400, 'client must be a client id or name', 'bad_frame');
  return body.client;
}

const STATUS_OF: Record<CommandErrorCode, number> = { not_found: 404, forbidden: 403, too_large: 409, unavailable: 503, outcome_unknown: 504 };

/**
 * The status of a `who` the engine could not answer, as the other routes give these codes (POST /api/publish): the
 * broker's or Redis's failure is not the caller's bad input (400), which every other code is (a cursor not ours).
 */
const WHO_STATUS: Partial<Record<string, number>> = { unavailable: 503, outcome_unknown: 504, internal: 500 };

/** A command's outcome as the HTTP answer: the client it was done to, or the error with its status. */
function commandAnswer(outcome: CommandOutcome): { id: string; name: string } {
  if (!outcome.ok) throw new HttpError(STATUS_OF[outcome.code], outcome.message, outcome.code);
  return outcome.client;
}

export function registerServerApi(router: Router, core: BrokerCore, guarded: (h: Handler) => Handler, log: Logger, calls: NodeCalls | undefined): void {
  const { config, hub } = core;
  const commands = new ClientCommands(config, hub, calls);
  const isRunning = () => core.supervisor.getSnapshot().value === 'running';
  const running = () => {
    if (!isRunning()) throw new HttpError(503, 'server shutting down', 'unavailable');
  };

  router.on('POST', '/api/publish/batch', guarded(async (req, res) => {
    running();
    const body = await jsonBody(req, config.maxPayload * 16);
    running(); // shutdown may have begun while the body arrived (as POST /api/publish checks)
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0 || messages.length > BATCH_MAX) throw new HttpError(400, `messages must be an array of 1 to ${BATCH_MAX} {topic, data} objects`, 'bad_frame');
    const results: unknown[] = [];
    // In order, one at a time: the messages of one batch to one topic keep their order.
    for (const m of messages as unknown[]) {
      const fail = (code: string, message: string) => results.push({ error: code, message });
      // Shutdown began while earlier messages of the batch were published: the rest surely are not.
      if (!isRunning()) {
        fail('unavailable', 'server shutting down');
        continue;
      }
      if (typeof m !== 'object' || m === null || Array.isArray(m)) { fail('bad_frame', 'a message is a {topic, data} object'); continue; }
      const { topic, data, idempotencyKey: rawKey } = m as Record<string, unknown>;
      const err = topicError(topic);
      if (err) { fail('bad_topic', err); continue; }
      if (!('data' in m)) { fail('bad_frame', 'a message needs data'); continue; }
      // Each message is held to --max-payload, as POST /api/publish and a client's pub are (the batch's body may be 16×).
      if (Buffer.byteLength(JSON.stringify(data) ?? '') > config.maxPayload) { fail('too_large', `a message's data is over --max-payload (${config.maxPayload} bytes)`); continue; }
      let key: string | undefined;
      try {
        key = idempotencyKey(rawKey);
      } catch (e) {
        fail('bad_frame', (e as Error).message);
        continue;
      }
      try {
        // Once per idempotency key: the engine keeps the keys (in Redis on a cluster, for every node).
        const result = await hub.publishAsync(topic as string, data, key);
        if (result instanceof ProtocolError) fail(result.code, result.message);
        else results.push(result);
      } catch (e) {
        log.error({ err: e, topic }, 'api batch publish failed');
        fail('internal', 'internal error');
      }
    }
    sendJson(res, 200, { results });
  }));

  router.on('POST', '/api/clients/disconnect', guarded(async (req, res) => {
    const body = await jsonBody(req, 4096);
    const code = body.code ?? CLOSE.byServer;
    if (!(Number.isInteger(code) && ((code as number) === 1000 || ((code as number) >= 4000 && (code as number) <= 4999)))) throw new HttpError(400, 'code must be 1000 or 4000 to 4999', 'bad_frame');
    const reason = body.reason ?? 'disconnected by the server';
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > 120) throw new HttpError(400, 'reason must be a string of at most 120 bytes', 'bad_frame');
    const target = clientOf(body);
    const client = commandAnswer(await commands.run(target, { op: 'disconnect', code: code as number, reason }));
    sendJson(res, 200, { disconnected: client, code, reason });
  }));

  for (const op of ['subscribe', 'unsubscribe'] as const) {
    router.on('POST', `/api/clients/${op}`, guarded(async (req, res) => {
      const body = await jsonBody(req, 4096);
      const target = clientOf(body);
      const err = filterError(body.topic);
      if (err) throw new HttpError(400, err, 'bad_topic');
      const topic = body.topic as string;
      if (body.presence !== undefined && typeof body.presence !== 'boolean') throw new HttpError(400, 'presence must be a boolean', 'bad_frame');
      const command: ClientCommand = op === 'subscribe' ? { op, topic, presence: body.presence === true } : { op, topic };
      const client = commandAnswer(await commands.run(target, command));
      sendJson(res, 200, { client, topic, [op === 'subscribe' ? 'subscribed' : 'unsubscribed']: true });
    }));
  }

  router.on('GET', '/api/who', guarded(async (_req, res, url) => {
    const topic = url.searchParams.get('topic') ?? undefined;
    if (topic !== undefined && filterError(topic)) throw new HttpError(400, filterError(topic)!, 'bad_topic');
    const rawLimit = url.searchParams.get('limit');
    const limit = rawLimit === null ? 100 : Number(rawLimit);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > WHO_LIMIT_MAX) throw new HttpError(400, `limit must be 1 to ${WHO_LIMIT_MAX}`, 'bad_request');
    const cursor = url.searchParams.get('cursor') ?? undefined;
    const answer = await new ApiAsker().who(hub, topic, limit, cursor);
    if (answer.op === 'error') throw new HttpError(WHO_STATUS[answer.code] ?? 400, answer.message, answer.code);
    const { clients, next } = answer as unknown as { clients: unknown[]; next?: string };
    sendJson(res, 200, next === undefined ? { clients } : { clients, next });
  }));
}

// What the application backend's answers mean (docs/integration.md, "Hook answers"). Pure: an answer object in,
// a verdict out; every field the backend may send is checked here, and a malformed answer is the backend's fault
// (the client hears `unavailable`), never a crash.
import { Grant } from '../auth/grant.js';
import { AuthFailure, grantFromClaims } from '../auth/tokens.js';
import { ProtocolError, type FrameId } from '../protocol/errors.js';
import { filterError, LONE_SURROGATE } from '../protocol/topic.js';
import { nameError } from '../protocol/frames.js';
import type { HookFailure } from './client.js';

/** Largest `meta` (JSON bytes) a connect answer may attach to a client: it travels in every presence event about it. */
export const META_MAX_BYTES = 4096;
/** Longest cache lifetime a backend may give (an hour). */
export const CACHE_MAX_MS = 3_600_000;
/** Most initial subscriptions one connect answer may give. */
export const TOPICS_MAX = 100;

export type ConnectVerdict =
  | { ok: true; grant: Grant | undefined; topics: string[] | undefined; meta: Record<string, unknown> | undefined }
  | { ok: false; status: 401 | 403 | 503; message: string };

/** The lifetime the backend gave its answer (`cacheMs`), 0 when none or not a valid one. */
export function cacheLifetime(answer: Record<string, unknown>): number {
  const ms = answer.cacheMs;
  return typeof ms === 'number' && Number.isSafeInteger(ms) && ms > 0 ? Math.min(ms, CACHE_MAX_MS) : 0;
}

const denied = (answer: Record<string, unknown>) => answer.allow === false;
const reasonOf = (answer: Record<string, unknown>, fallback: string) =>
  typeof answer.reason === 'string' && answer.reason.length > 0 ? answer.reason.slice(0, 200) : fallback;

/** A connect answer: deny (401/403 with the reason) or allow, possibly with a name, a grant, topics and meta. */
export function connectVerdict(answer: Record<string, unknown>, token: Grant | undefined): ConnectVerdict {
  if (denied(answer)) return { ok: false, status: answer.status === 401 ? 401 : 403, message: reasonOf(answer, 'refused by the application') };
  const bad = (why: string): ConnectVerdict => ({ ok: false, status: 503, message: `the application backend's connect answer is invalid: ${why}` });
  let grant = token;
  if (answer.name !== undefined || answer.acl !== undefined || answer.admin !== undefined) {
    const name = answer.name ?? token?.name;
    if (name === undefined) return bad('acl or admin without a name');
    if (answer.admin !== undefined && typeof answer.admin !== 'boolean') return bad('admin must be a boolean');
    if (answer.acl === undefined && token) {
      const problem = nameError(name);
      if (problem) return bad(`name: ${problem}`);
      // The token's acl whole (its subDeny too: a name or admin from the backend never widens what it may read).
      grant = new Grant({ name: name as string, pub: token.pub, sub: token.sub, subDeny: token.subDeny, send: token.send, admin: (answer.admin as boolean | undefined) ?? token.admin, exp: token.exp });
    } else {
      const g = grantFromClaims({ sub: name as string, acl: answer.acl, admin: answer.admin, exp: token?.exp });
      if (g instanceof AuthFailure) return bad(g.message.replace(/^token /, ''));
      grant = g;
    }
  }
  let topics: string[] | undefined;
  if (answer.topics !== undefined) {
    if (!Array.isArray(answer.topics) || answer.topics.length > TOPICS_MAX) return bad(`topics must be an array of at most ${TOPICS_MAX} filters`);
    for (const t of answer.topics) if (filterError(t)) return bad(`topics: ${filterError(t)}`);
    topics = answer.topics as string[];
  }
  let meta: Record<string, unknown> | undefined;
  if (answer.meta !== undefined) {
    if (typeof answer.meta !== 'object' || answer.meta === null || Array.isArray(answer.meta)) return bad('meta must be an object');
    if (Buffer.byteLength(JSON.stringify(answer.meta)) > META_MAX_BYTES) return bad(`meta over ${META_MAX_BYTES} bytes`);
    // (Redis's Lua cjson refuses the escape of a lone surrogate: a client record holding one could not be reaped.)
    if (holdsLoneSurrogate(answer.meta)) return bad('meta holds a string that is not well-formed Unicode (a lone surrogate)');
    meta = answer.meta as Record<string, unknown>;
  }
  return { ok: true, grant, topics, meta };
}

/** Whether a JSON value holds a lone surrogate in any string or key (bounded: meta is checked for size first). */
function holdsLoneSurrogate(v: unknown): boolean {
  if (typeof v === 'string') return LONE_SURROGATE.test(v);
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return v.some(holdsLoneSurrogate);
  return Object.entries(v).some(([k, x]) => LONE_SURROGATE.test(k) || holdsLoneSurrogate(x));
}

/** A connect hook that failed: the upgrade is answered 503 with why (the broker did not connect the client). */
export function connectFailure(failure: HookFailure): ConnectVerdict {
  return { ok: false, status: 503, message: failure.message };
}

/** A subscribe answer: deny (`forbidden` with the reason) or allow, possibly with `data` for the ack. */
export function subscribeVerdict(answer: Record<string, unknown>, filter: string, id: FrameId | undefined): { data: unknown; hasData: boolean } | ProtocolError {
  if (denied(answer)) return new ProtocolError('forbidden', reasonOf(answer, `the application does not allow subscribing to '${filter.slice(0, 64)}'`), id);
  return { data: answer.data, hasData: 'data' in answer };
}

/** A publish answer: deny (`forbidden`), allow as sent, or allow with the data replaced (`data` in the answer). */
export function publishVerdict(answer: Record<string, unknown>, topic: string, id: FrameId | undefined): { data: unknown; replaced: boolean } | ProtocolError {
  if (denied(answer)) return new ProtocolError('forbidden', reasonOf(answer, `the application does not allow publishing to '${topic.slice(0, 64)}'`), id);
  return { data: answer.data, replaced: 'data' in answer };
}

/** An rpc answer: `{error:{message}}` → backend_error, a deny → forbidden, else its `data` (null when absent). */
export function rpcVerdict(answer: Record<string, unknown>, method: string, id: FrameId | undefined): { data: unknown } | ProtocolError {
  if (answer.error !== undefined) {
    const e = answer.error as { message?: unknown } | string;
    const message = typeof e === 'string' ? e : typeof e?.message === 'string' ? e.message : `rpc '${method.slice(0, 64)}' failed`;
    return new ProtocolError('backend_error', message.slice(0, 200), id);
  }
  if (denied(answer)) return new ProtocolError('forbidden', reasonOf(answer, `the application does not allow rpc '${method.slice(0, 64)}'`), id);
  return { data: 'data' in answer ? answer.data : null };
}

/**
 * A failed call as the client's error, told truthfully: for subscribe and publish the broker did not act
 * (`unavailable`); for an rpc that may have reached the backend, `backend_error` when it answered an HTTP error,
 * `outcome_unknown` when it did not answer.
 */
export function failureError(failure: HookFailure, kind: 'subscribe' | 'publish' | 'rpc', id: FrameId | undefined): ProtocolError {
  if (kind !== 'rpc' || !failure.reached) return new ProtocolError('unavailable', `${failure.message}; nothing was done, retry later`, id);
  if (failure.why === 'status' && (failure.status ?? 0) < 500) return new ProtocolError('backend_error', failure.message, id);
  if (failure.why === 'status' || failure.why === 'bad_answer') return new ProtocolError('backend_error', failure.message, id);
  return new ProtocolError('outcome_unknown', `${failure.message}; it may or may not have acted`, id);
}

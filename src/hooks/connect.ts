// The connect hook at a transport's door: before any actor exists, the application backend decides whether a
// connection opens, and as whom (docs/integration.md). Shared by the WebSocket upgrade, the /lines upgrade and
// the TCP port, so each transport adds one call.
import type { IncomingMessage } from 'node:http';
import type { Grant } from '../auth/grant.js';
import type { Transport } from '../protocol/frames.js';
import type { Hooks } from './hooks.js';

export type Admission =
  | { ok: true; grant: Grant | undefined; topics: string[]; meta: Record<string, unknown> | undefined }
  | { ok: false; status: 401 | 403 | 409 | 503; statusText: string; message: string };

const STATUS_TEXT = { 401: 'Unauthorized', 403: 'Forbidden', 409: 'Conflict', 503: 'Service Unavailable' } as const;

export interface DoorRequest {
  transport: Transport;
  addr: string;
  name: string | undefined;
  topics: string[];
  token: Grant | undefined;
  /** The upgrade request (absent on the TCP port): its cookie, authorization and origin headers go to the backend. */
  http?: IncomingMessage | undefined;
}

/**
 * The connect hook's verdict, or undefined when the hook is off (the connection opens as it asked). Allowed: the
 * grant (the token's, or the one the backend gave with a fixed name), the initial subscriptions (the backend's
 * `topics`, else those asked: the backend saw them) and `meta`. A name the backend fixed that is connected: 409.
 */
export async function admitThroughHook(hooks: Hooks | undefined, req: DoorRequest, isNameFree: (name: string) => boolean): Promise<Admission | undefined> {
  if (!hooks?.has('connect')) return undefined;
  const h = req.http?.headers;
  const verdict = await hooks.connect({
    transport: req.transport,
    addr: req.addr,
    name: req.name,
    topics: req.topics,
    headers: { cookie: h?.cookie, authorization: h?.authorization, origin: h?.origin },
    token: req.token,
  });
  if (!verdict.ok) return { ok: false, status: verdict.status, statusText: STATUS_TEXT[verdict.status], message: verdict.message };
  const { grant } = verdict;
  if (grant && grant !== req.token && !isNameFree(grant.name)) return { ok: false, status: 409, statusText: STATUS_TEXT[409], message: `client '${grant.name}' is already connected` };
  return { ok: true, grant, topics: verdict.topics ?? req.topics, meta: verdict.meta };
}

// HookClient: POSTs JSON to the application backend and reads its JSON answer. Signed (HMAC-SHA256 of the body
// under --hook-secret), bounded in time (--hook-timeout-ms), in calls in flight per process (--hook-max-inflight)
// and in answer size; keep-alive connections; one circuit breaker per hook. Never throws: a failure is data that
// says whether the backend may have seen the request (an rpc's answer must be true about that).
import { createHmac } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { CircuitBreaker } from './breaker.js';
import { parseInboundJson } from '../protocol/json.js';
import { ProtocolError } from '../protocol/errors.js';

/** The largest answer read from the backend. */
export const ANSWER_MAX_BYTES = 1024 * 1024;
export const SIGNATURE_HEADER = 'x-switchboard-signature';

export type HookKind = 'connect' | 'subscribe' | 'publish' | 'rpc' | 'events';

export type HookFailure =
  /** Not sent: the breaker is open, too many calls in flight, or the backend refused (or did not accept in time) the connection. */
  | { ok: false; reached: false; why: 'breaker' | 'busy' | 'unreachable'; message: string }
  /** Sent: no answer in time, an HTTP error status, or an answer that is not a JSON object. */
  | { ok: false; reached: true; why: 'timeout' | 'status' | 'bad_answer' | 'broken'; message: string; status?: number };

export type HookResult = { ok: true; answer: Record<string, unknown>; bytes: number } | HookFailure;

export const HOOK_KINDS: readonly HookKind[] = ['connect', 'subscribe', 'publish', 'rpc', 'events'];

export interface HookClientOptions {
  /** The backend's base URL: a kind without its own URL is POSTed to <baseUrl>/<kind>. */
  baseUrl?: string | undefined;
  /** Kinds with their own URL (--hook-<kind>-url). */
  urls?: Partial<Record<HookKind, string | undefined>>;
  secret?: string | undefined;
  timeoutMs: number;
  maxInflight: number;
  breakerFailures: number;
  breakerMs: number;
}

/** The signature header value of `body` under `secret`: what a backend recomputes to trust a call. */
export function sign(secret: string, body: string | Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

export class HookClient {
  private readonly agents: { http: HttpAgent; https: HttpsAgent };
  /** Where each configured kind is POSTed. */
  private readonly targets = new Map<HookKind, URL>();
  private readonly breakers = new Map<HookKind, CircuitBreaker>();
  private inflight = 0;
  /** Calls by kind and outcome (metrics, bench). */
  readonly counts = new Map<string, number>();

  constructor(private readonly options: HookClientOptions) {
    const base = options.baseUrl === undefined ? undefined : new URL(options.baseUrl.endsWith('/') ? options.baseUrl : options.baseUrl + '/');
    for (const kind of HOOK_KINDS) {
      const own = options.urls?.[kind];
      if (own !== undefined) this.targets.set(kind, new URL(own));
      else if (base) this.targets.set(kind, new URL(kind, base));
    }
    const agentOptions = { keepAlive: true, maxSockets: options.maxInflight, maxFreeSockets: Math.min(256, options.maxInflight) };
    this.agents = { http: new HttpAgent(agentOptions), https: new HttpsAgent(agentOptions) };
  }

  /** Whether `kind` has a URL (its own, or under the base URL). */
  reaches(kind: HookKind): boolean {
    return this.targets.has(kind);
  }

  get inFlight(): number {
    return this.inflight;
  }

  breaker(kind: HookKind): CircuitBreaker {
    let b = this.breakers.get(kind);
    if (!b) this.breakers.set(kind, (b = new CircuitBreaker(this.options.breakerFailures, this.options.breakerMs)));
    return b;
  }

  /** POSTs `body` to the kind's URL; resolves with the answer or the failure, within the timeout. */
  call(kind: HookKind, body: unknown): Promise<HookResult> {
    const breaker = this.breaker(kind);
    if (this.inflight >= this.options.maxInflight) return Promise.resolve(this.count(kind, { ok: false, reached: false, why: 'busy', message: 'too many calls waiting on the application backend' }));
    if (!breaker.allows()) return Promise.resolve(this.count(kind, { ok: false, reached: false, why: 'breaker', message: `the application backend failed repeatedly; its ${kind} hook is paused` }));
    this.inflight++;
    return this.post(kind, JSON.stringify(body)).then((result) => {
      this.inflight--;
      // A 4xx is the backend answering (it refused this call: a bad method, a client it does not know), not the backend
      // failing: it must not pause the hook for every other client, which one client's bad calls could otherwise do.
      // (408 and 429 say the backend is slow or overloaded: those count, as 5xx do.)
      if (result.ok || refusedByBackend(result)) breaker.succeeded();
      else breaker.failedCall();
      return this.count(kind, result);
    });
  }

  private count(kind: HookKind, result: HookResult): HookResult {
    const key = `${kind}:${result.ok ? 'ok' : result.why}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    return result;
  }

  private post(kind: HookKind, json: string): Promise<HookResult> {
    const url = this.targets.get(kind);
    if (!url) return Promise.resolve({ ok: false, reached: false, why: 'unreachable', message: `no URL is configured for the ${kind} hook` });
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), 'x-switchboard-hook': kind };
    if (this.options.secret !== undefined) headers[SIGNATURE_HEADER] = sign(this.options.secret, json);
    const https = url.protocol === 'https:';
    const request = https ? httpsRequest : httpRequest;
    return new Promise<HookResult>((resolve) => {
      let settled = false;
      let sent = false;
      const done = (result: HookResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const req = request(url, { method: 'POST', headers, agent: https ? this.agents.https : this.agents.http }, (res) => this.read(res, kind, done));
      const timer = setTimeout(() => {
        // Not connected yet (a backend that does not accept: a full accept queue, a blackholed address, a TLS handshake
        // never answered): the request never left, so the backend surely did not act on it and a retry is safe.
        if (!sent) done({ ok: false, reached: false, why: 'unreachable', message: `the application backend did not accept the connection within ${this.options.timeoutMs} ms` });
        else done({ ok: false, reached: true, why: 'timeout', message: `the application backend did not answer within ${this.options.timeoutMs} ms` });
        req.destroy();
      }, this.options.timeoutMs);
      req.on('socket', (socket) => {
        // A reused keep-alive socket is connected already; a new one once 'connect' fires (over TLS once the handshake
        // is done: the request is written encrypted after it). Before that nothing was sent.
        if (!socket.connecting) sent = true;
        else socket.once(https ? 'secureConnect' : 'connect', () => (sent = true));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (!sent || err.code === 'ECONNREFUSED' || err.code === 'ENOTFOUND' || err.code === 'EHOSTUNREACH') {
          done({ ok: false, reached: false, why: 'unreachable', message: `the application backend is unreachable (${err.code ?? err.message})` });
        } else {
          done({ ok: false, reached: true, why: 'broken', message: `the connection to the application backend broke (${err.code ?? err.message})` });
        }
      });
      req.end(json);
    });
  }

  private read(res: IncomingMessage, kind: HookKind, done: (r: HookResult) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > ANSWER_MAX_BYTES) {
        done({ ok: false, reached: true, why: 'bad_answer', message: `the application backend's answer is over ${ANSWER_MAX_BYTES} bytes` });
        res.destroy();
        return;
      }
      chunks.push(chunk);
    });
    res.on('error', () => done({ ok: false, reached: true, why: 'broken', message: 'the answer of the application backend was cut off' }));
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        const detail = backendMessage(text);
        return done({ ok: false, reached: true, why: 'status', status, message: `the application backend answered HTTP ${status}${detail ? `: ${detail}` : ''}` });
      }
      // A webhook batch is delivered by any 2xx (docs/integration.md, "Webhooks"): its answer is never read, so a
      // 204 or a plain "OK" is an acknowledgement, not a malformed answer that would send the batch again forever.
      if (kind === 'events') return done({ ok: true, answer: {}, bytes: size });
      const value = parseInboundJson(text, 'answer');
      if (value instanceof ProtocolError || typeof value !== 'object' || value === null || Array.isArray(value)) {
        return done({ ok: false, reached: true, why: 'bad_answer', message: 'the application backend answered something that is not a JSON object' });
      }
      // A verdict is true or false: `"false"`, 0 or null is no verdict (read as an allow, it let through what the
      // backend meant to refuse). A failed call, like any malformed answer: nothing is done, the breaker counts it.
      const allow = Object.hasOwn(value, 'allow') ? (value as { allow: unknown }).allow : undefined;
      if (allow !== undefined && typeof allow !== 'boolean') {
        return done({ ok: false, reached: true, why: 'bad_answer', message: "the application backend's answer is not a verdict (allow must be true or false)" });
      }
      done({ ok: true, answer: value as Record<string, unknown>, bytes: size });
    });
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

/** The message of an error answer (`{"error":{"message":…}}`, `{"error":"…"}`, `{"reason":"…"}` or short text), at most 200 characters. */
export function backendMessage(text: string): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    const t = text.trim();
    return t.length > 0 && t.length <= 200 && !/[\u0000-\u001f]/.test(t) ? t : undefined;
  }
  const v = value as { error?: unknown; reason?: unknown; message?: unknown } | null;
  const m = typeof v?.error === 'object' && v.error !== null ? (v.error as { message?: unknown }).message : (v?.error ?? v?.reason ?? v?.message);
  return typeof m === 'string' ? m.slice(0, 200) : undefined;
}

/** An HTTP 4xx the backend chose to answer a call with (not 408 or 429: it is up, and the call is what it refused). */
function refusedByBackend(r: HookFailure): boolean {
  return r.why === 'status' && r.status !== undefined && r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429;
}

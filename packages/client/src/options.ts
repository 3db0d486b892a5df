// The client's options (the constructor's, and subscription()'s), checked before anything starts: each one of the
// wrong type or out of range is a `bad_option` error that names it and what it got (never a crash later, far from
// the mistake).
import { DEFAULT_BACKOFF, type Backoff } from './backoff.js';
import { SwitchboardError } from './errors.js';
import { readPosition } from './positions.js';
import type { WebSocketConstructor } from './socket.js';
import type { EventSourceConstructor } from './sse-socket.js';
import type { SubscribeOptions } from './subscription.js';
import type { Position } from './wire.js';

export interface ClientOptions {
  /**
   * The broker's WebSocket endpoint, e.g. `ws://127.0.0.1:8080/ws` (or `/ws` relative to the page in a browser;
   * without a path, `/ws`). Several (the nodes of a cluster): the first is dialled first; after a connection is
   * lost or a dial fails, the next one in turn. Subscriptions resume on whichever node answers.
   */
  url: string | readonly string[];
  /** Sent as `?token=`. */
  token?: string;
  /** Asked for a token before connecting when there is none or it expired, after a refused connect, and before a JWT expires. */
  getToken?: () => string | Promise<string>;
  /** Asked at every connect (`?name=`); a successful rename replaces it. */
  name?: string;
  /** The WebSocket class; default `globalThis.WebSocket`, else the `ws` package (Node 20). */
  WebSocket?: WebSocketConstructor;
  /**
   * When a WebSocket cannot be opened (a proxy that blocks upgrades), dial that URL's Server-Sent Events transport
   * instead (`/sse`, docs/sse.md), while it works and for `wsRetryMs` at most, then WebSocket again (default true).
   * Each URL falls back on its own. false: WebSocket only.
   */
  sseFallback?: boolean;
  /** How long a URL stays on the SSE fallback after its WebSocket failed before WebSocket is tried there again (default 5 minutes). */
  wsRetryMs?: number;
  /** The EventSource class for the fallback; default `globalThis.EventSource` (browsers). Without one there is no fallback. */
  EventSource?: EventSourceConstructor | undefined;
  backoff?: Partial<Backoff>;
  /** A request without a reply after this long fails with `timeout` (default 10 s). */
  requestTimeoutMs?: number;
  /** A connect without `hello` after this long is retried (default 10 s). */
  connectTimeoutMs?: number;
  /** Publishes kept while offline (default 1000); beyond it publish fails with `queue_full`. */
  offlineQueueSize?: number;
  /** Connect at construction (default true). */
  connect?: boolean;
  /** Random source of the backoff jitter, [0, 1). */
  random?: () => number;
}

/** The constructor's checks: every option of the wrong type or out of range is a `bad_option`, said plainly. */
export function checkOptions(options: unknown): void {
  const bad = (why: string) => new SwitchboardError('bad_option', why);
  if (typeof options !== 'object' || options === null) throw bad('new SwitchboardClient(options) needs an options object with a url');
  const o = options as Record<string, unknown>;
  const known = new Set(['url', 'token', 'getToken', 'name', 'WebSocket', 'sseFallback', 'wsRetryMs', 'EventSource', 'backoff', 'requestTimeoutMs', 'connectTimeoutMs', 'offlineQueueSize', 'connect', 'random']);
  for (const key of Object.keys(o)) if (!known.has(key)) throw bad(`unknown option '${key}' (options: ${[...known].join(', ')})`);
  const kinds: [string, string][] = [
    ['token', 'string'],
    ['name', 'string'],
    ['getToken', 'function'],
    ['WebSocket', 'function'],
    ['EventSource', 'function'],
    ['sseFallback', 'boolean'],
    ['random', 'function'],
    ['connect', 'boolean'],
  ];
  for (const [key, kind] of kinds) {
    if (o[key] !== undefined && typeof o[key] !== kind) throw bad(`${key} must be a ${kind}, got ${describeValue(o[key])}`);
  }
  for (const key of ['requestTimeoutMs', 'connectTimeoutMs', 'wsRetryMs']) {
    const v = o[key];
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= 2 ** 31 - 1)) throw bad(`${key} must be a number of ms above 0, got ${describeValue(v)}`);
  }
  const q = o.offlineQueueSize;
  if (q !== undefined && !(Number.isSafeInteger(q) && (q as number) >= 0)) throw bad(`offlineQueueSize must be a whole number ≥ 0, got ${describeValue(q)}`);
  if (o.backoff !== undefined) {
    if (typeof o.backoff !== 'object' || o.backoff === null) throw bad(`backoff must be an object {minMs, maxMs, factor}, got ${describeValue(o.backoff)}`);
    const b = { ...DEFAULT_BACKOFF, ...(o.backoff as Partial<Backoff>) };
    for (const key of ['minMs', 'maxMs', 'factor'] as const) {
      if (!(typeof b[key] === 'number' && Number.isFinite(b[key]) && b[key] >= 0)) throw bad(`backoff.${key} must be a number ≥ 0, got ${describeValue(b[key])}`);
    }
    if (b.maxMs < b.minMs) throw bad(`backoff.maxMs (${b.maxMs}) must not be below backoff.minMs (${b.minMs})`);
    if (b.factor < 1) throw bad(`backoff.factor must be ≥ 1, got ${b.factor}`);
    if (b.maxMs > 2 ** 31 - 1) throw bad(`backoff.maxMs must be at most ${2 ** 31 - 1} ms`);
  }
}

/** Checks the options of `client.subscription()`; the message says what is wrong. */
export function checkSubscribeOptions(filter: unknown, options: unknown): { positions?: Map<string, Position> } {
  const bad = (why: string) => new SwitchboardError('bad_option', why);
  if (typeof filter !== 'string' || filter.length === 0) throw bad(`a subscription needs a filter (a non-empty string), got ${describeValue(filter)}`);
  if (typeof options !== 'object' || options === null) throw bad(`subscribe options must be an object, got ${describeValue(options)}`);
  const o = options as SubscribeOptions;
  for (const flag of ['presence', 'history'] as const) {
    if (o[flag] !== undefined && typeof o[flag] !== 'boolean') throw bad(`${flag} must be true or false, got ${describeValue(o[flag])}`);
  }
  if (o.bufferSize !== undefined && !(Number.isSafeInteger(o.bufferSize) && o.bufferSize > 0)) {
    throw bad(`bufferSize must be a whole number above 0, got ${describeValue(o.bufferSize)}`);
  }
  if (o.positions === undefined) return {};
  if (typeof o.positions !== 'object' || o.positions === null) throw bad(`positions must be an object of topic → {seq, epoch}, got ${describeValue(o.positions)}`);
  const positions = new Map<string, Position>();
  for (const [topic, value] of Object.entries(o.positions)) {
    const p = readPosition(value);
    if (!p) throw bad(`positions['${topic}'] must be {seq: a whole number ≥ 0, epoch?: string}, got ${describeValue(value)}`);
    positions.set(topic, p);
  }
  return { positions };
}

/** A wrong value as the message shows it (a long string cut short). */
function describeValue(value: unknown): string {
  if (typeof value === 'string') return `'${value.length > 80 ? value.slice(0, 80) + '…' : value}'`;
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

// The client's constructor options, checked before anything starts: each one of the wrong type or out of range is a
// `bad_option` error that names it and what it got (never a crash later, far from the mistake).
import { DEFAULT_BACKOFF, type Backoff } from './backoff.js';
import { SwitchboardError } from './errors.js';
import { describeValue } from './subscription.js';

/** The constructor's checks: every option of the wrong type or out of range is a `bad_option`, said plainly. */
export function checkOptions(options: unknown): void {
  const bad = (why: string) => new SwitchboardError('bad_option', why);
  if (typeof options !== 'object' || options === null) throw bad('new SwitchboardClient(options) needs an options object with a url');
  const o = options as Record<string, unknown>;
  const known = new Set(['url', 'token', 'getToken', 'name', 'WebSocket', 'sseFallback', 'EventSource', 'backoff', 'requestTimeoutMs', 'connectTimeoutMs', 'offlineQueueSize', 'connect', 'random']);
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
  for (const key of ['requestTimeoutMs', 'connectTimeoutMs']) {
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

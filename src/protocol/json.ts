// Inbound JSON: one parse for every transport and the HTTP API, refusing nesting deeper than MAX_JSON_DEPTH
// before JSON.parse sees it, so nothing downstream (stringify, validation, fan-out) can recurse out of stack.
import { ProtocolError } from './errors.js';

/** Deepest nesting of arrays and objects accepted in inbound JSON. */
export const MAX_JSON_DEPTH = 64;

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Whether `text` nests arrays/objects deeper than `max`: one loop over the characters, strings skipped, no recursion. */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return false;
}

/**
 * Parses inbound JSON text; too deep or not JSON is a `bad_frame` ProtocolError. Never throws. V8's parser does not
 * recurse, so a deep frame is parsed first: its error then carries the frame's `id`, and nothing downstream (stringify,
 * validation, fan-out) ever sees the deep value.
 */
export function parseInboundJson(text: string, what = 'frame'): unknown | ProtocolError {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    return new ProtocolError('bad_frame', `${what} is not valid JSON`);
  }
  // Valid JSON nesting deeper than MAX_JSON_DEPTH holds more than that many brackets opened and closed: a shorter
  // text (most frames) needs no second look.
  if (text.length > 2 * MAX_JSON_DEPTH && nestsDeeperThan(text, MAX_JSON_DEPTH)) return new ProtocolError('bad_frame', `${what} nests JSON deeper than ${MAX_JSON_DEPTH} levels`, idOf(value));
  return value;
}

/** The `id` of a frame-shaped value, when it is a valid one (a number, or a string of at most 128 characters). */
function idOf(value: unknown): string | number | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const id = (value as { id?: unknown }).id;
  if (typeof id === 'number' && Number.isFinite(id)) return id;
  if (typeof id === 'string' && id.length <= 128) return id;
  return undefined;
}

// Topic and filter syntax (docs/protocol.md "Topics"): pure validation; the only state is a bounded cache of valid topics.
export const TOPIC_LIMITS = { maxSegments: 16, maxSegmentLength: 64, maxLength: 256 } as const;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/**
 * A UTF-16 surrogate without its pair (JSON can carry one as `\ud800`): not a character, and not encodable as UTF-8 —
 * Redis would get U+FFFD in its place (two topics, names or keys on one key) and its Lua cjson refuses the escape.
 */
export const LONE_SURROGATE = /\p{Cs}/u;

// Publishers repeat their topics: the last few thousand valid ones are remembered with their JSON form, so a `pub` to
// a known topic costs one lookup instead of a split and a scan, and its `msg` one more instead of a JSON.stringify
// (bounded: when full, the oldest makes room; a client spraying new topics does not empty it for everyone).
const KNOWN_MAX = 4096;
const knownTopics = new Map<string, TopicText>();

/** A valid topic as a message's JSON carries it: its JSON string, and that string's UTF-8 size beyond its length. */
export interface TopicText {
  readonly json: string;
  /** 0 for an ASCII topic: a message head's UTF-8 size is then its length plus this, never measured per message. */
  readonly extraBytes: number;
}

function textOf(topic: string): TopicText {
  const json = JSON.stringify(topic);
  return { json, extraBytes: Buffer.byteLength(json) - json.length };
}

/** Returns an error message, or null when `topic` is a valid concrete topic. */
export function topicError(topic: unknown): string | null {
  if (typeof topic === 'string' && knownTopics.has(topic)) return null;
  const err = check(topic, false);
  if (err === null) remember(topic as string);
  return err;
}

function remember(topic: string): void {
  if (knownTopics.size >= KNOWN_MAX) knownTopics.delete(knownTopics.keys().next().value!);
  knownTopics.set(topic, textOf(topic));
}

/** `topic` (a valid concrete topic) as a JSON string, from the cache of known topics when it is there. */
export function topicJson(topic: string): string {
  return topicText(topic).json;
}

/** `topic` (a valid concrete topic) as a message carries it (TopicText), from the cache of known topics when it is there. */
export function topicText(topic: string): TopicText {
  return knownTopics.get(topic) ?? textOf(topic);
}

/** Returns an error message, or null when `filter` is a valid subscription filter. */
export function filterError(filter: unknown): string | null {
  return check(filter, true);
}

export function isWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

function check(value: unknown, wildcards: boolean): string | null {
  if (typeof value !== 'string') return 'topic must be a string';
  if (value.length === 0) return 'topic is empty';
  if (value.length > TOPIC_LIMITS.maxLength) return `topic longer than ${TOPIC_LIMITS.maxLength} characters`;
  if (CONTROL.test(value)) return 'topic contains control characters';
  if (LONE_SURROGATE.test(value)) return 'topic is not well-formed Unicode (a lone surrogate)';
  const segments = value.split('/');
  if (segments.length > TOPIC_LIMITS.maxSegments) return `topic has more than ${TOPIC_LIMITS.maxSegments} segments`;
  for (let i = 0; i < segments.length; i++) {
    // An empty segment is a segment, as in MQTT (`/a`, `a//b`, `a/`): devices use them.
    const s = segments[i]!;
    if (s.length > TOPIC_LIMITS.maxSegmentLength) return `topic segment longer than ${TOPIC_LIMITS.maxSegmentLength} characters`;
    if (wildcards && (s === '+' || (s === '#' && i === segments.length - 1))) continue;
    if (s === '#') return wildcards ? "'#' is allowed only as the last segment" : 'a publish topic cannot contain wildcards';
    if (s.includes('+') || s.includes('#')) {
      return wildcards ? "wildcards '+' and '#' must be whole segments" : 'a publish topic cannot contain wildcards';
    }
  }
  return null;
}

/** Reference matcher: does `filter` match concrete `topic`? Used by tests and by `who` on a filter. */
export function filterMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

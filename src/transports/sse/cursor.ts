// SSE cursor: a stream's subscriptions and positions as one short ASCII string, the `id` of its events, so that a
// browser's own `Last-Event-ID` reconnect resumes exactly. Pure: no sockets, no engine (docs/sse.md, Cursor).
//
//   1;<life>;<flag>;<filter>,<filter>…;<position>,<position>…
//
// - `life`: the engine's life when the stream began (positions of topics the stream never saw are vouched for
//   relative to it);
// - `flag`: empty, `p` (some positions did not fit the bound: only concrete filters with a position resume) or
//   `f` (the filters themselves did not fit: nothing can be resumed);
// - a filter, `!`-prefixed when presence is on for it;
// - a position `<ref>!<epoch>!<seq base 36>`: `ref` is `@<i>` (the topic is filter i) or the topic itself;
//   an epoch of the form `<life>.<n>` is written `.<n>`.
// Every name is escaped: only `A-Z a-z 0-9 / _ . - + # ~` stay as they are, everything else is %-encoded UTF-8, so
// the separators `; , ! @ %` never occur inside a part and the header stays ASCII.
import { filterMatches, isWildcard } from '../../protocol/topic.js';

export const CURSOR_VERSION = '1';
/** The longest cursor written (characters, all ASCII): well under Node's 16 KiB header limit on reconnect. */
export const CURSOR_MAX_BYTES = 4096;

export interface Position {
  seq: number;
  epoch: string;
}

export interface Cursor {
  life: string;
  /** Filters held, in subscription order, with whether presence is on for each. */
  filters: { filter: string; presence: boolean }[];
  /** Last position delivered per topic. */
  positions: Map<string, Position>;
  /** '' complete; 'p' positions dropped; 'f' filters dropped (see above). */
  flag: '' | 'p' | 'f';
}

const SAFE = /^[A-Za-z0-9/_.\-+#~]*$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Escapes one name; undefined when it is not well-formed UTF-16 (a lone surrogate cannot be written). */
export function escapePart(s: string): string | undefined {
  if (SAFE.test(s)) return s;
  if (LONE_SURROGATE.test(s)) return undefined;
  let out = '';
  for (const ch of s) out += /[A-Za-z0-9/_.\-+#~]/.test(ch) ? ch : percent(ch);
  return out;
}

function percent(ch: string): string {
  let out = '';
  for (const b of Buffer.from(ch, 'utf8')) out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  return out;
}

function unescapePart(s: string): string | undefined {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/**
 * Writes `c` within `maxBytes`. Positions of concrete filters come first, then the rest in the order given; what
 * does not fit is left out and flagged, so a resume never claims a position it does not have.
 */
export function encodeCursor(c: Cursor, maxBytes = CURSOR_MAX_BYTES): string {
  const life = escapePart(c.life) ?? '';
  const filterIndex = new Map<string, number>();
  const parts: string[] = [];
  let flag = c.flag;
  for (const { filter, presence } of c.filters) {
    const e = escapePart(filter);
    if (e === undefined) {
      flag = 'f';
      continue;
    }
    filterIndex.set(filter, parts.length);
    parts.push(presence ? '!' + e : e);
  }
  const head = `${CURSOR_VERSION};${life};`;
  const filtersText = parts.join(',');
  if (flag === 'f' || head.length + 2 + filtersText.length + 1 > maxBytes) return `${head}f;;`;
  const own: string[] = [];
  const other: string[] = [];
  for (const [topic, pos] of c.positions) {
    const i = filterIndex.get(topic);
    const ref = i !== undefined && !isWildcard(topic) ? `@${i}` : escapePart(topic);
    const epoch = pos.epoch.startsWith(c.life + '.') && c.life !== '' ? pos.epoch.slice(c.life.length) : escapePart(pos.epoch);
    if (ref === undefined || epoch === undefined) {
      flag = flag || 'p';
      continue;
    }
    (i !== undefined ? own : other).push(`${ref}!${epoch}!${pos.seq.toString(36)}`);
  }
  let budget = maxBytes - head.length - 2 - filtersText.length - 1;
  const kept: string[] = [];
  for (const entry of [...own, ...other]) {
    const cost = entry.length + (kept.length > 0 ? 1 : 0);
    if (cost > budget) {
      flag = 'p';
      break;
    }
    budget -= cost;
    kept.push(entry);
  }
  return `${head}${flag};${filtersText};${kept.join(',')}`;
}

/** Reads a cursor; a string that is not one (wrong version, bad escapes, bad numbers) is undefined. Never throws. */
export function decodeCursor(text: string, limits = { maxBytes: CURSOR_MAX_BYTES, maxFilters: 100_000 }): Cursor | undefined {
  if (text.length > limits.maxBytes) return undefined;
  const sections = text.split(';');
  if (sections.length !== 5 || sections[0] !== CURSOR_VERSION) return undefined;
  const [, lifeText, flag, filtersText, positionsText] = sections as [string, string, string, string, string];
  if (flag !== '' && flag !== 'p' && flag !== 'f') return undefined;
  const life = unescapePart(lifeText);
  if (life === undefined || life.length > 64) return undefined;
  const filters: Cursor['filters'] = [];
  // A stream's filters are a set: one written twice is no cursor of ours (1,000 copies of `#` with a position map
  // each cost a resume hundreds of milliseconds of the loop, on the word of one request).
  const seen = new Set<string>();
  for (const part of filtersText === '' ? [] : filtersText.split(',')) {
    const presence = part.startsWith('!');
    const filter = unescapePart(presence ? part.slice(1) : part);
    if (filter === undefined || filter === '' || seen.has(filter)) return undefined;
    seen.add(filter);
    filters.push({ filter, presence });
  }
  if (filters.length > limits.maxFilters) return undefined;
  const positions = new Map<string, Position>();
  for (const part of positionsText === '' ? [] : positionsText.split(',')) {
    const fields = part.split('!');
    if (fields.length !== 3) return undefined;
    const [ref, epochText, seqText] = fields as [string, string, string];
    let topic: string | undefined;
    if (ref.startsWith('@')) {
      if (!/^@\d{1,6}$/.test(ref)) return undefined;
      topic = filters[Number(ref.slice(1))]?.filter;
      if (topic === undefined || isWildcard(topic)) return undefined;
    } else {
      topic = unescapePart(ref);
    }
    const epoch = epochText.startsWith('.') ? life + epochText : unescapePart(epochText);
    if (!topic || !epoch || epoch.length > 64 || !/^[0-9a-z]{1,11}$/.test(seqText)) return undefined;
    const seq = parseInt(seqText, 36);
    if (!Number.isSafeInteger(seq) || seq < 1) return undefined;
    positions.set(topic, { seq, epoch });
  }
  return { life, filters, positions, flag };
}

/**
 * The `sub` frames that resume `cursor`'s filters, and the filters that cannot be resumed (the cursor left their
 * positions out): those are subscribed live only, and the stream says so (`notRecovered`, `cursor_overflow`).
 */
export function resumeFrames(cursor: Cursor): { frames: Record<string, unknown>[]; unresumable: string[] } {
  const frames: Record<string, unknown>[] = [];
  const unresumable: string[] = [];
  for (const { filter, presence } of cursor.filters) {
    const base: Record<string, unknown> = presence ? { op: 'sub', topic: filter, presence: true } : { op: 'sub', topic: filter };
    if (!isWildcard(filter)) {
      const pos = cursor.positions.get(filter);
      if (pos) frames.push({ ...base, since: pos.seq, epoch: pos.epoch, life: cursor.life });
      else if (cursor.flag === '') frames.push({ ...base, since: 0, life: cursor.life });
      else {
        frames.push(base);
        unresumable.push(filter);
      }
      continue;
    }
    if (cursor.flag !== '') {
      frames.push(base);
      unresumable.push(filter);
      continue;
    }
    // Null-prototype maps: topics are client input (a topic named __proto__ is a topic like any other).
    const since: Record<string, number> = Object.create(null) as Record<string, number>;
    const epoch: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [topic, pos] of cursor.positions) {
      if (!filterMatches(filter, topic)) continue;
      since[topic] = pos.seq;
      epoch[topic] = pos.epoch;
    }
    frames.push({ ...base, since, epoch, life: cursor.life });
  }
  return { frames, unresumable };
}

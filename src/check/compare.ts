// Comparison of what one client received during one step with what the model expects.
// Per connection the order is the broker's queue order and is compared exactly, except where the
// protocol leaves it open: several presence events of one step, and replayed messages of different topics.
import { ANY, type Expected } from '../protocol/model.js';
import type { Frame } from './probe.js';

export interface CompareOptions {
  /** Ids of the clients this checker created: `who` lists are narrowed to them. */
  ours: ReadonlySet<string>;
  /** Nobody else is connected: `delivered` counts must match exactly (else: at least the model's). */
  exclusive: boolean;
  /** The epoch first seen per topic: a topic's epoch may not change during a scenario (nothing restarts). */
  epochs?: Map<string, string>;
}

/** Null when `actual` conforms to `expected`; otherwise the two lists, normalised, for the report. */
export function difference(expected: Expected[], actual: Frame[], opts: CompareOptions): { expected: string[]; actual: string[] } | null {
  const exp = canonicalOrder(expected.map((f) => normalise(f, opts)));
  const deliveredById = new Map(exp.filter((f) => f.op === 'ack' && typeof f.delivered === 'number').map((f) => [f.id, f.delivered as number]));
  const act = canonicalOrder(
    actual.map((f) => {
      const n = normalise(f, opts);
      const want = deliveredById.get(n.id);
      // Other people's subscribers also count in `delivered` on a shared broker: ours are a lower bound.
      if (!opts.exclusive && want !== undefined && typeof n.delivered === 'number' && n.delivered >= want) n.delivered = want;
      return n;
    }),
  );
  const e = exp.map(canonical);
  const a = act.map(canonical);
  return e.length === a.length && e.every((x, i) => x === a[i]) ? null : { expected: e, actual: a };
}

/** Replaces broker-chosen values by their placeholder when their type is right; narrows `who` lists. */
function normalise(frame: Record<string, unknown>, opts: CompareOptions): Record<string, unknown> {
  const f: Record<string, unknown> = { ...frame };
  if (f.op === 'msg' && typeof f.ts === 'number') f.ts = ANY.number;
  if (f.op === 'msg' && typeof f.topic === 'string') f.epoch = sameEpoch(f.topic, f.epoch, opts);
  if (f.op === 'ack') {
    if (typeof f.epoch === 'string') f.epoch = ANY.epoch;
    if (typeof f.life === 'string') f.life = sameEpoch('(life)', f.life, opts);
    if (typeof f.reason === 'string') f.reason = ANY.text;
    if (typeof f.positions === 'object' && f.positions !== null) {
      // fromEntries: a topic called `__proto__` stays an own key (assigning it to `{}` would set the prototype).
      const entries = Object.entries(f.positions as Record<string, { seq?: unknown; epoch?: unknown }>);
      f.positions = Object.fromEntries(entries.map(([topic, p]) => [topic, { ...p, epoch: sameEpoch(topic, p?.epoch, opts) }]));
    }
  }
  if (f.op === 'error' && typeof f.message === 'string' && f.message.length > 0) f.message = ANY.text;
  if (f.op === 'hello') {
    if (typeof f.heartbeatMs === 'number') f.heartbeatMs = ANY.number;
    if (typeof f.idleMs === 'number') f.idleMs = ANY.number;
    if (typeof f.idleClose === 'boolean') f.idleClose = ANY.flag;
    if (typeof f.server === 'object' && f.server !== null) f.server = ANY.object;
  }
  if (f.op === 'ack' && Array.isArray(f.clients)) {
    f.clients = (f.clients as { id?: unknown; state?: unknown }[])
      .filter((c) => typeof c?.id === 'string' && opts.ours.has(c.id))
      .map((c) => (typeof c.state === 'string' && c.state.length > 0 ? { ...c, state: ANY.text } : c))
      .sort((x, y) => String(x.id).localeCompare(String(y.id)));
  }
  return f;
}

/** The placeholder when `epoch` is a string and the topic's first seen epoch; the raw value (a difference) otherwise. */
function sameEpoch(topic: string, epoch: unknown, opts: CompareOptions): unknown {
  if (typeof epoch !== 'string' || epoch.length === 0 || epoch === ANY.epoch) return epoch;
  const first = opts.epochs?.get(topic);
  if (first === undefined) opts.epochs?.set(topic, epoch);
  else if (first !== epoch) return `${epoch} (epoch changed from ${first})`;
  return ANY.epoch;
}

/** Sorts each run of consecutive events (by content) and of consecutive msgs (by topic, stable: per-topic order stays). */
function canonicalOrder(frames: Record<string, unknown>[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let i = 0;
  while (i < frames.length) {
    const op = frames[i]!.op;
    let j = i;
    while (j < frames.length && frames[j]!.op === op) j++;
    const run = frames.slice(i, j);
    if (op === 'event') run.sort((x, y) => canonical(x).localeCompare(canonical(y)));
    if (op === 'msg') run.sort((x, y) => String(x.topic).localeCompare(String(y.topic)));
    out.push(...run);
    i = j;
  }
  return out;
}

/** JSON with sorted keys, so field order never matters. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

// InspectionSampler: decides which raw xstate inspection events leave the process, and trims them.
// Lifecycle events always pass; recurring chatter (heartbeat pongs) is rate-limited, and
// snapshots pass only when the state changed or their event passed. Nothing here runs per delivery.
import type { AnyEventObject, InspectionEvent, Snapshot } from 'xstate';
import type { Engine } from '../engine/engine.js';

/** Events that recur without changing any state: a pong per connection per heartbeat (frames are no actor events). */
export const CHATTER_EVENTS: ReadonlySet<string> = new Set(['PONG']);

/** Event data longer than this (as JSON) is replaced by a preview: inspection shows who and what, not payloads. */
const MAX_DATA_CHARS = 256;

export interface SamplerOptions {
  /** Chatter events forwarded per second across the whole process (token bucket). */
  chatterPerSecond: number;
}

export interface SamplerCounts {
  forwarded: number;
  /** Chatter events and their unchanged snapshots left out by the rate limit. */
  sampledOut: number;
}

export class InspectionSampler {
  readonly counts: SamplerCounts = { forwarded: 0, sampledOut: 0 };
  private tokens: number;
  private refilledAt = Date.now();
  /** Per actor: the state key last forwarded, and whether its latest event was forwarded. */
  private readonly lastKey = new WeakMap<object, string>();
  private readonly eventPassed = new WeakMap<object, boolean>();

  constructor(private readonly options: SamplerOptions) {
    this.tokens = options.chatterPerSecond;
  }

  /** The event to forward (trimmed), or undefined to leave it out. */
  select(ev: InspectionEvent): InspectionEvent | undefined {
    switch (ev.type) {
      case '@xstate.actor':
        return this.pass(ev);
      case '@xstate.event': {
        const passed = !CHATTER_EVENTS.has(ev.event.type) || this.takeToken();
        this.eventPassed.set(ev.actorRef, passed);
        if (!passed) return this.drop();
        return this.pass({ ...ev, event: trimEvent(ev.event) });
      }
      case '@xstate.snapshot': {
        const key = stateKey(ev.snapshot);
        const changed = this.lastKey.get(ev.actorRef) !== key;
        if (!changed && this.eventPassed.get(ev.actorRef) === false) return this.drop();
        this.lastKey.set(ev.actorRef, key);
        return this.pass({ ...ev, event: trimEvent(ev.event), snapshot: trimSnapshot(ev.snapshot) });
      }
      default:
        // Microsteps and actions are implied by the snapshots; the Stately Inspector ignores them anyway.
        return undefined;
    }
  }

  private pass(ev: InspectionEvent): InspectionEvent {
    this.counts.forwarded++;
    return ev;
  }

  private drop(): undefined {
    this.counts.sampledOut++;
    return undefined;
  }

  private takeToken(): boolean {
    const now = Date.now();
    const rate = this.options.chatterPerSecond;
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) * rate) / 1000);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

/** A snapshot's state and status as one comparable string, e.g. `active {"open":{"activity":"idle",…}}`. */
export function stateKey(snapshot: Snapshot<unknown>): string {
  const value = (snapshot as { value?: unknown }).value;
  return `${snapshot.status} ${typeof value === 'string' ? value : JSON.stringify(value)}`;
}

/** The parts of a snapshot worth showing; the supervisor's engine and logger are summarised, not walked. */
export function trimSnapshot(snapshot: Snapshot<unknown>): Snapshot<unknown> {
  const s = snapshot as Snapshot<unknown> & { value?: unknown; context?: unknown; error?: unknown };
  return { status: s.status, value: s.value, context: trimContext(s.context), output: s.output, error: s.error } as Snapshot<unknown>;
}

/** Context fit for the wire: Links serialise as client info (Link.toJSON), actor refs as ids, the engine as counts. */
export function trimContext(context: unknown): unknown {
  if (context === null || typeof context !== 'object') return context;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(context)) {
    if (isEngine(value)) out[key] = key === 'hub' ? engineSummary(value) : 'engine';
    else if (key === 'log') continue; // the pino logger: streams and symbols, nothing to look at
    else if (key === 'supervisor') out[key] = 'supervisor';
    else out[key] = value;
  }
  return out;
}

function isEngine(value: unknown): value is Engine {
  return typeof value === 'object' && value !== null && 'sessionCount' in value && 'stats' in value;
}

function engineSummary(hub: Engine): Record<string, number> {
  return { connections: hub.sessionCount, published: hub.stats.published, delivered: hub.stats.delivered };
}

/** Events keep their type, link and op; payloads become short previews; a reply callback becomes its name. */
export function trimEvent(event: AnyEventObject): AnyEventObject {
  const e = event as AnyEventObject & { frame?: { data?: unknown }; data?: unknown; input?: unknown; reply?: unknown };
  if (e.frame && 'data' in e.frame) return { ...e, frame: { ...e.frame, data: preview(e.frame.data) } };
  if ('data' in e || 'reply' in e) return { ...e, data: preview(e.data), reply: typeof e.reply === 'function' ? 'reply' : undefined };
  if (e.type === 'xstate.init' && e.input) return { ...e, input: trimContext(e.input) };
  return event;
}

function preview(data: unknown): unknown {
  if (data === null || typeof data !== 'object') {
    return typeof data === 'string' && data.length > MAX_DATA_CHARS ? `${data.slice(0, MAX_DATA_CHARS)}… (${data.length} chars)` : data;
  }
  const json = JSON.stringify(data);
  return json.length > MAX_DATA_CHARS ? `${json.slice(0, MAX_DATA_CHARS)}… (${json.length} chars of JSON)` : data;
}

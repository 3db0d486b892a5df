// ActorTable: the live actors page's in-process view of the actor tree, fed by xstate's inspection stream.
// One row per actor (who, state, subscriptions, mailbox depth, age, last event) and a small ring of its
// recent events and transitions. It only listens while someone watches (attach/detach), so it costs nothing otherwise.
import type { AnyActorRef, AnyEventObject, InspectionEvent, Observer, Snapshot, Subscription } from 'xstate';
import type { Link } from '../actors/link.js';
import type { ActorTree } from '../actors/tree.js';

/** Recent events and transitions kept per actor. */
export const RECENT_PER_ACTOR = 30;
/** How long a closed connection stays on the page (greyed) before its row goes. */
export const CLOSED_LINGER_MS = 2000;

export interface Happening {
  at: number;
  kind: 'event' | 'transition';
  /** Event type in short form (`FRAME pub a/b`, `after nextCheck`) or, for transitions, the event that caused it. */
  what: string;
  from?: string | undefined;
  to?: string | undefined;
  source?: string | undefined;
  /** The line as a person reads it: `started in connecting`, `connecting → online on ACCEPTED`, `c18 finished (closed 1000 quit)`. */
  text: string;
}

export interface ActorRow {
  id: string;
  machine: string;
  name: string;
  addr: string;
  transport: string;
  /** One word: connecting, online, idle, closing, closed (connections); running, draining, stopped (supervisor). */
  state: string;
  /** The full state value, for highlighting the machine diagram. */
  value: unknown;
  status: string;
  subscriptions: string[];
  subscriptionCount: number;
  mailboxDepth: number;
  since: number;
  lastEvent: { what: string; at: number } | null;
  parent: string | null;
}

interface Tracked {
  ref: AnyActorRef;
  recent: Happening[];
  /** Bumped on every new happening, so viewers know when to resend the detail. */
  seq: number;
  lastEvent: { what: string; at: number } | null;
  stateKey: string;
  statePaths: string[];
  since: number;
  closedAt: number | null;
}

export class ActorTable {
  private readonly actors = new Map<string, Tracked>();
  private subscription: Subscription | undefined;
  private tree: ActorTree | undefined;
  private rootStartedAt = 0;
  /** True while attach() runs: the actors announced then were alive before, the later ones are new. */
  private attaching = false;
  /** Rows to redraw at once: new actors and state changes. Everything else is picked up by the periodic scan. */
  readonly urgent = new Set<string>();
  /** Ids of rows removed since the last take. */
  removed: string[] = [];

  readonly observer: Observer<InspectionEvent> = { next: (ev) => this.record(ev) };

  /**
   * Starts listening to the tree, which first announces the actors already alive; each is dated from its
   * start: a connection from its link, the root from `rootStartedAt` (the table only learns of them now).
   */
  attach(tree: ActorTree, rootStartedAt = Date.now()): void {
    if (this.subscription) return;
    this.tree = tree;
    this.rootStartedAt = rootStartedAt;
    this.attaching = true;
    try {
      this.subscription = tree.inspect(this.observer);
    } finally {
      this.attaching = false;
    }
  }

  /** Stops listening and forgets everything (no viewer left). */
  detach(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.tree = undefined;
    this.actors.clear();
    this.urgent.clear();
    this.removed = [];
  }

  get attached(): boolean {
    return this.subscription !== undefined;
  }

  get size(): number {
    return this.actors.size;
  }

  ids(): IterableIterator<string> {
    return this.actors.keys();
  }

  /** Drops rows of actors closed more than CLOSED_LINGER_MS ago. */
  sweep(now = Date.now()): void {
    for (const [id, t] of this.actors) {
      if (t.closedAt !== null && now - t.closedAt >= CLOSED_LINGER_MS) {
        this.actors.delete(id);
        this.urgent.delete(id);
        this.removed.push(id);
      }
    }
  }

  row(id: string): ActorRow | undefined {
    const t = this.actors.get(id);
    if (!t) return undefined;
    const snapshot = (t.ref.getSnapshot() ?? { status: 'active' }) as Snapshot<unknown> & { value?: unknown; context?: { link?: Link } };
    // A crash (a throw while transitioning) ends the actor without an `@xstate.snapshot`: its row must still close.
    if (t.closedAt === null && snapshot.status !== 'active') this.ended(t, snapshot.status, 'crashed');
    const link = snapshot.context?.link;
    const value = snapshot.value;
    const parent = this.tree?.parentOf(t.ref);
    return {
      id,
      machine: machineOf(t.ref),
      name: link?.name ?? id,
      addr: link?.addr ?? '',
      transport: link?.transport ?? '',
      state: t.closedAt !== null ? 'closed' : stateWord(value),
      value,
      status: snapshot.status,
      subscriptions: link ? [...link.subscriptions].slice(0, 20) : [],
      subscriptionCount: link?.subscriptions.size ?? 0,
      mailboxDepth: link?.mailbox.depth ?? 0,
      since: link?.connectedAt ?? t.since,
      lastEvent: t.lastEvent,
      parent: parent?.id ?? null,
    };
  }

  /** Recent events and transitions of one actor, oldest first, with a change counter. */
  recent(id: string): { seq: number; recent: Happening[] } | undefined {
    const t = this.actors.get(id);
    return t && { seq: t.seq, recent: t.recent };
  }

  private track(ref: AnyActorRef, since = Date.now()): Tracked {
    let t = this.actors.get(ref.id);
    if (t && t.ref === ref) return t;
    // An event can still reach an actor that already finished (a late SOCKET_CLOSED): its row must still go.
    const status = statusOf(ref);
    const closedAt = status !== undefined && status !== 'active' ? Date.now() : null;
    // Its start is the first thing that happened to it: the column is never blank.
    t = { ref, recent: [], seq: 0, lastEvent: { what: 'started', at: since }, stateKey: '', statePaths: [], since, closedAt };
    this.actors.set(ref.id, t);
    this.urgent.add(ref.id);
    return t;
  }

  /** An actor alive before the table listened: its current state is the baseline, so its next change reads `a → b`. */
  private seed(ref: AnyActorRef, startedAt: number | undefined): void {
    const link = (ref.getSnapshot() as { context?: { link?: Link } } | undefined)?.context?.link;
    const t = this.track(ref, link?.connectedAt ?? startedAt ?? Date.now());
    const snapshot = ref.getSnapshot() as { status?: string; value?: unknown } | undefined;
    if (!snapshot) return;
    t.stateKey = stateKeyOf(snapshot.status, snapshot.value);
    t.statePaths = statePaths(snapshot.value);
  }

  private record(ev: InspectionEvent): void {
    switch (ev.type) {
      case '@xstate.actor':
        if (this.attaching) this.seed(ev.actorRef as AnyActorRef, ev.actorRef === this.tree?.root ? this.rootStartedAt : undefined);
        else this.track(ev.actorRef as AnyActorRef); // not started yet: its first snapshot reads `started in …`
        return;
      case '@xstate.event': {
        if (ev.event.type === 'CONNECTION_CRASHED') {
          // xstate sends no snapshot for an actor that threw: the supervisor's news is when its row learns it ended.
          const crashed = this.actors.get((ev.event as { link?: { id?: string } }).link?.id ?? '');
          if (crashed && crashed.closedAt === null) this.ended(crashed, statusOf(crashed.ref) ?? 'error', 'crashed');
        }
        const t = this.track(ev.actorRef as AnyActorRef);
        const what = describeEvent(ev.event);
        const at = Date.now();
        t.lastEvent = { what, at };
        this.push(t, { at, kind: 'event', what, source: (ev.sourceRef as AnyActorRef | undefined)?.id, text: what });
        return;
      }
      case '@xstate.snapshot': {
        const t = this.track(ev.actorRef as AnyActorRef);
        const value = (ev.snapshot as { value?: unknown }).value;
        // Most snapshots (every forwarded frame) leave the state as it was: compare one native-built string first.
        const key = stateKeyOf(ev.snapshot.status, value);
        if (key === t.stateKey) return;
        const paths = statePaths(value);
        // Show only the regions that moved: `open.activity.online → open.activity.idle`, not the unchanged heartbeat.
        const before = t.statePaths;
        const from = before.length === 0 ? undefined : before.filter((p) => !paths.includes(p)).join(' ') || before.join(' ');
        const to = paths.filter((p) => !before.includes(p)).join(' ') || paths.join(' ');
        const what = describeEvent(ev.event);
        const text = transitionText(before, paths, what, ev.snapshot.status);
        t.stateKey = key;
        t.statePaths = paths;
        this.push(t, { at: Date.now(), kind: 'transition', what, from, to: ev.snapshot.status === 'active' ? to : `${to} (${ev.snapshot.status})`, text });
        if (ev.snapshot.status !== 'active' && t.closedAt === null) t.closedAt = Date.now();
        this.urgent.add(t.ref.id);
        return;
      }
      default:
        return;
    }
  }

  /** An actor that ended without a final snapshot (xstate reports a throw only to its parent). */
  private ended(t: Tracked, status: string, what: string): void {
    const at = Date.now();
    t.closedAt = at;
    t.stateKey = `${status} crashed`;
    this.push(t, { at, kind: 'transition', what, from: t.statePaths.join(' ') || undefined, to: `closed (${status})`, text: `${stateWord(valueOfPaths(t.statePaths))} → closed on ${what} (${status})` });
    this.urgent.add(t.ref.id);
  }

  private push(t: Tracked, h: Happening): void {
    t.recent.push(h);
    if (t.recent.length > RECENT_PER_ACTOR) t.recent.shift();
    t.seq++;
  }
}

/** The actor's status, or undefined while it is still being constructed (xstate's dev build throws on that read). */
function statusOf(ref: AnyActorRef): string | undefined {
  try {
    return (ref.getSnapshot() as Snapshot<unknown> | undefined)?.status;
  } catch {
    return undefined;
  }
}

function machineOf(ref: AnyActorRef): string {
  return (ref as { logic?: { id?: string } }).logic?.id ?? 'actor';
}

/** The state as one word: the top-level state, or (for the connection's `open`) its activity. */
export function stateWord(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const [top, inner] = Object.entries(value)[0] ?? [];
    if (top === 'open' && inner && typeof inner === 'object' && 'activity' in inner) return String((inner as { activity: unknown }).activity);
    return top ?? '?';
  }
  return '?';
}

/** Leaf paths of a state value: `{open:{activity:'idle',heartbeat:'beating'}}` → ['open.activity.idle', 'open.heartbeat.beating']. */
export function statePaths(value: unknown, prefix = ''): string[] {
  if (typeof value === 'string') return [prefix + value];
  if (!value || typeof value !== 'object') return [];
  const out: string[] = [];
  for (const [key, inner] of Object.entries(value)) {
    const paths = statePaths(inner, `${prefix}${key}.`);
    if (paths.length === 0) out.push(prefix + key);
    else out.push(...paths);
  }
  return out;
}

function stateKeyOf(status: string | undefined, value: unknown): string {
  return `${status} ${typeof value === 'string' ? value : JSON.stringify(value)}`;
}

/** How a state change reads: by the one-word state when that changed (`connecting → online`), else by the regions that moved. */
export function transitionText(before: readonly string[], after: readonly string[], what: string, status: string): string {
  const word = (paths: readonly string[]) => stateWord(valueOfPaths(paths));
  const done = status === 'active' ? '' : ` (${status})`;
  if (before.length === 0) return `started in ${word(after)}${done}`;
  if (word(before) !== word(after)) return `${word(before)} → ${word(after)} on ${what}${done}`;
  const short = (paths: readonly string[]) => paths.map((p) => p.replace(/^open\./, '')).join(' ');
  return `${short(before.filter((p) => !after.includes(p)))} → ${short(after.filter((p) => !before.includes(p)))} on ${what}${done}`;
}

/** The state value back from its leaf paths (`open.activity.idle` → {open:{activity:'idle'}}), for stateWord. */
function valueOfPaths(paths: readonly string[]): unknown {
  if (paths.length === 1 && !paths[0]!.includes('.')) return paths[0];
  const root: Record<string, unknown> = {};
  for (const p of paths) {
    const parts = p.split('.');
    let node = root;
    for (const part of parts.slice(0, -2)) node = (node[part] ??= {}) as Record<string, unknown>;
    if (parts.length >= 2) node[parts.at(-2)!] = parts.at(-1);
  }
  return root;
}

/** A short label for an event: its type, plus the op and topic or peer for control events; never payloads. */
export function describeEvent(event: AnyEventObject): string {
  const type = event.type;
  if (type === 'xstate.init') return 'started';
  if (type.startsWith('xstate.after.')) return `after ${type.slice('xstate.after.'.length).split('.')[0]}`;
  if (type === 'CONNECTION_CLOSED' || type === 'CONNECTION_CRASHED') {
    const { link, close } = event as { link?: { id?: string }; close?: { code?: unknown; reason?: unknown } };
    if (type === 'CONNECTION_CRASHED') return `${link?.id ?? '?'} crashed`;
    const closed = typeof close?.code === 'number' ? ` (closed ${close.code}${close.reason ? ` ${String(close.reason)}` : ''})` : '';
    return `${link?.id ?? '?'} finished${closed}`;
  }
  const e = event as { link?: { id?: string }; code?: number };
  if (type === 'CONNECT' && e.link?.id) return `CONNECT ${e.link.id}`;
  if (typeof e.code === 'number') return `${type} ${e.code}`;
  return type;
}

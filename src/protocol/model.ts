// ProtocolModel: the reference model of docs/protocol.md (protocol 2) for the conformance checker. Pure: no sockets,
// no timers, no broker code beyond the reference matcher. Given who connected and what each client
// sent, it says which frames every client must receive next, in order, and which connection closes.
// Ids and addresses are the broker's to choose, so connect() takes them from the observed hello.
import { filterMatches } from './topic.js';
import type { FrameId } from './errors.js';
import type { ClientFrame, ClientInfo, Transport } from './frames.js';
import { CLOSE } from './errors.js';

export type Slot = number;
// The frame shapes are the protocol's own types; what the model decides about them is written out below.
export type { ClientInfo, FrameId, Transport };
/** A frame a client sends, as the model reads it (validation is the model's own, below). */
export type ModelFrame = ClientFrame;

/** An expected server frame. Values the broker picks freely are placeholders: see ANY. */
export type Expected = Record<string, unknown> & { op: string };

/** Placeholders for fields whose value the protocol leaves to the broker (compare by type only). */
export const ANY = { number: '<number>', text: '<text>', object: '<object>', flag: '<boolean>', epoch: '<epoch>' } as const;

export interface Outcome {
  /** Frames each client must receive because of this step, in its order. */
  frames: Map<Slot, Expected[]>;
  /** A connection the broker must close, and with which code. */
  close?: { slot: Slot; code: number };
}

interface Subscription {
  filter: string;
  presence: boolean;
}

interface ClientState extends ClientInfo {
  live: boolean;
  /** In the order first subscribed: presence events about this client follow it. */
  subs: Subscription[];
}

export interface ModelOptions {
  /** Messages kept per topic for `sub` with `since` (the broker's --history). */
  historySize: number;
  /** The TCP chat room: TCP clients hold it, with presence, from connect. */
  room?: string;
}

export class ProtocolModel {
  private readonly clients = new Map<Slot, ClientState>();
  private readonly seqs = new Map<string, number>();
  private readonly history = new Map<string, { seq: number; frame: Expected }[]>();

  constructor(readonly options: ModelOptions) {}

  isLive(slot: Slot): boolean {
    return this.clients.get(slot)?.live === true;
  }

  /** The client last connected on `slot`, live or gone. */
  client(slot: Slot): (Readonly<ClientInfo> & { live: boolean; filters: readonly string[]; watching: readonly string[] }) | undefined {
    const c = this.clients.get(slot);
    return c && {
      ...info(c),
      live: c.live,
      filters: c.subs.map((s) => s.filter),
      watching: c.subs.filter((s) => s.presence).map((s) => s.filter),
    };
  }

  liveSlots(): Slot[] {
    return [...this.clients].filter(([, c]) => c.live).map(([s]) => s);
  }

  /** Last seq published on `topic` (0: never). */
  lastSeq(topic: string): number {
    return this.seqs.get(topic) ?? 0;
  }

  /** A client connected on `slot`; the broker chose `id` and `addr` (read from its hello). */
  connect(slot: Slot, who: { id: string; addr: string; transport: Transport }, request: { name?: string; topics?: string[] } = {}): Outcome {
    const out = outcome();
    const problem = request.name === undefined ? null : this.nameProblem(request.name, null);
    const client: ClientState = { ...who, name: '', live: true, subs: [] };
    client.name = request.name !== undefined && problem === null ? request.name : this.defaultName(client);
    this.clients.set(slot, client);
    push(out, slot, { op: 'hello', client: info(client), heartbeatMs: ANY.number, idleMs: ANY.number, idleClose: ANY.flag, server: ANY.object });
    if (problem) push(out, slot, errorOf(problem));
    const initial: Subscription[] = (request.topics ?? []).map((filter) => ({ filter, presence: false }));
    if (who.transport === 'tcp' && this.options.room) initial.push({ filter: this.options.room, presence: true });
    for (const { filter, presence } of initial) {
      if (!isFilter(filter)) push(out, slot, errorOf('bad_topic'));
      else if (this.subscribe(client, filter, presence)) this.announce(out, 'join', client, filter);
    }
    return out;
  }

  /** `slot` sent `frame`. */
  frame(slot: Slot, frame: ModelFrame): Outcome {
    const out = outcome();
    const c = this.live(slot);
    // A frame without id is a notification: no ack (docs/protocol.md); who and sub with since always answer.
    const answered = frame.id !== undefined || frame.op === 'who' || (frame.op === 'sub' && frame.since !== undefined);
    const reply = (fields: Record<string, unknown> = {}) => {
      if (answered) push(out, slot, withId({ op: 'ack', ...fields }, frame.id));
    };
    const fail = (code: string) => push(out, slot, errorOf(code, frame.id));
    switch (frame.op) {
      case 'sub': {
        if (!isFilter(frame.topic)) return fail('bad_topic'), out;
        if (typeof frame.since === 'number' && frame.since > 0 && isWildcard(frame.topic)) return fail('bad_frame'), out;
        const isNew = this.subscribe(c, frame.topic, frame.presence === true);
        if (frame.since === undefined) reply({ life: ANY.epoch });
        else {
          const { frames, fields } = this.resume(frame.topic, frame.since, frame.epoch);
          reply(fields);
          for (const f of frames) push(out, slot, f);
        }
        if (isNew) this.announce(out, 'join', c, frame.topic);
        return out;
      }
      case 'unsub': {
        if (!isFilter(frame.topic)) return fail('bad_topic'), out;
        const i = c.subs.findIndex((s) => s.filter === frame.topic);
        if (i >= 0) {
          c.subs.splice(i, 1);
          this.announce(out, 'leave', c, frame.topic);
        }
        return reply(), out;
      }
      case 'pub': {
        if (!isTopic(frame.topic)) return fail('bad_topic'), out;
        const seq = (this.seqs.get(frame.topic) ?? 0) + 1;
        this.seqs.set(frame.topic, seq);
        const msg: Expected = { op: 'msg', topic: frame.topic, seq, epoch: ANY.epoch, data: frame.data, from: { id: c.id, name: c.name }, ts: ANY.number };
        this.remember(frame.topic, seq, msg);
        let delivered = 0;
        for (const [s, r] of this.clients) {
          if (!r.live || (r === c && frame.echo === false)) continue;
          if (!r.subs.some((sub) => filterMatches(sub.filter, frame.topic))) continue;
          push(out, s, msg);
          delivered++;
        }
        return reply({ seq, epoch: ANY.epoch, delivered }), out;
      }
      case 'send': {
        // `to` names a client id or name, so it has a name's length bounds; anything else is a malformed frame.
        if (frame.to.length === 0 || frame.to.length > 64) return fail('bad_frame'), out;
        const target = this.find(frame.to);
        if (!target) return fail('not_found'), out;
        push(out, target[0], { op: 'direct', from: { id: c.id, name: c.name }, data: frame.data });
        return reply(), out;
      }
      case 'who': {
        if (frame.topic !== undefined && !isFilter(frame.topic)) return fail('bad_topic'), out;
        const topic = frame.topic;
        const listed = [...this.clients.values()].filter(
          (r) =>
            r.live &&
            (topic === undefined ||
              (isWildcard(topic) ? r.subs.some((s) => s.filter === topic) : r.subs.some((s) => filterMatches(s.filter, topic)))),
        );
        // Protocol 2: entries carry the connection's state (online, idle, …: the broker's timing) and no address.
        return reply({ clients: listed.map((r) => ({ ...publicInfo(r), state: ANY.text })) }), out;
      }
      case 'rename': {
        const problem = this.nameProblem(frame.name, c);
        if (problem) return fail(problem), out;
        const old = c.name;
        c.name = frame.name;
        reply({ name: c.name });
        if (old !== c.name) for (const s of c.subs) this.announce(out, 'rename', c, s.filter, old);
        return out;
      }
      case 'auth':
        // The model's broker runs without auth: a token refresh is refused (docs/protocol.md, Token expiry).
        return fail('bad_frame'), out;
      case 'rpc':
        // The model's broker runs without an application backend: rpc is refused (docs/integration.md).
        return fail('bad_frame'), out;
      case 'ping':
        return push(out, slot, withId({ op: 'pong' }, frame.id)), out;
      case 'quit':
        out.close = { slot, code: CLOSE.normal };
        this.gone(out, c, 'leave');
        return out;
    }
  }

  /** `slot` sent something the broker must refuse with `code` (bad JSON, no op, unknown op…). */
  reject(slot: Slot, code: string, id?: FrameId): Outcome {
    this.live(slot);
    const out = outcome();
    push(out, slot, errorOf(code, id));
    return out;
  }

  /** The connection on `slot` dropped without quit (`leave`), or the broker timed it out (`timeout`). */
  disconnect(slot: Slot, cause: 'leave' | 'timeout' = 'leave'): Outcome {
    const out = outcome();
    this.gone(out, this.live(slot), cause);
    return out;
  }

  private live(slot: Slot): ClientState {
    const c = this.clients.get(slot);
    if (!c?.live) throw new Error(`model: no live client on slot ${slot}`);
    return c;
  }

  private gone(out: Outcome, c: ClientState, cause: 'leave' | 'timeout'): void {
    c.live = false;
    for (const s of c.subs) this.announce(out, cause, c, s.filter);
    c.subs = [];
  }

  /** True when `filter` is new to `c` (a join to announce). Re-subscribing sets presence as asked. */
  private subscribe(c: ClientState, filter: string, presence: boolean): boolean {
    const held = c.subs.find((s) => s.filter === filter);
    if (held) {
      held.presence = presence;
      return false;
    }
    c.subs.push({ filter, presence });
    return true;
  }

  /** Presence is keyed by the exact filter string: watchers of `filter`, the subject included while it watches. */
  private announce(out: Outcome, event: string, subject: ClientState, filter: string, old?: string): void {
    const frame: Expected = { op: 'event', event, client: publicInfo(subject), topic: filter, ...(old !== undefined && { old }) };
    for (const [s, c] of this.clients) {
      if (c.live && c.subs.some((sub) => sub.filter === filter && sub.presence)) push(out, s, frame);
    }
  }

  private remember(topic: string, seq: number, frame: Expected): void {
    const log = this.history.get(topic) ?? [];
    log.push({ seq, frame });
    if (log.length > this.options.historySize) log.shift();
    this.history.set(topic, log);
  }

  /**
   * A resuming `sub` (docs/protocol.md, Positions): per topic matching `filter`, the messages after the client's
   * position, or why they cannot be replayed (a topic trimmed past it: why, and what is still held of it). The
   * model's epochs never change within a scenario, so an epoch the client sends is the right one (the checker sends
   * the epoch it observed).
   */
  private resume(
    filter: string,
    since: number | Record<string, number>,
    epoch: string | Record<string, string> | undefined,
  ): { frames: Expected[]; fields: Record<string, unknown> } {
    const frames: Expected[] = [];
    // Maps: topics are client input (a topic may be called `__proto__` or `toString`).
    const missed = new Map<string, string>();
    const positions = new Map<string, unknown>();
    const seenOf = (topic: string): { seq: number; knowsEpoch: boolean } =>
      typeof since === 'number'
        ? { seq: since, knowsEpoch: typeof epoch === 'string' }
        : { seq: Object.hasOwn(since, topic) ? since[topic]! : 0, knowsEpoch: typeof epoch === 'object' && Object.hasOwn(epoch, topic) };
    for (const [topic, last] of this.seqs) {
      if (!filterMatches(filter, topic)) continue;
      positions.set(topic, { seq: last, epoch: ANY.epoch });
      const seen = seenOf(topic);
      if ((seen.seq > 0 && !seen.knowsEpoch) || seen.seq > last) {
        missed.set(topic, 'unknown_position');
        continue;
      }
      if (seen.seq === last) continue;
      const log = this.history.get(topic) ?? [];
      // Trimmed past the position: missed all the same, and what is still held (oldest … current) is replayed.
      if ((log[0]?.seq ?? last + 1) > seen.seq + 1) missed.set(topic, 'history_trimmed');
      for (const r of log) if (r.seq > seen.seq) frames.push(r.frame);
    }
    const asked = typeof since === 'number' ? (isWildcard(filter) ? [] : [filter]) : Object.keys(since);
    for (const topic of asked) if (seenOf(topic).seq > 0 && !this.seqs.has(topic)) missed.set(topic, 'unknown_position');
    const fields: Record<string, unknown> =
      missed.size === 0
        ? { recovered: true, life: ANY.epoch, positions: Object.fromEntries(positions) }
        : { recovered: false, life: ANY.epoch, reason: ANY.text, missed: Object.fromEntries(missed), positions: Object.fromEntries(positions) };
    return { frames, fields };
  }

  /** By id first, then by name, among live clients. */
  private find(to: string): [Slot, ClientState] | undefined {
    const live = [...this.clients].filter(([, c]) => c.live);
    return live.find(([, c]) => c.id === to) ?? live.find(([, c]) => c.name === to);
  }

  private nameProblem(name: string, self: ClientState | null): string | null {
    if (!isName(name)) return 'bad_name';
    const holder = [...this.clients.values()].find((c) => c.live && c.name === name);
    return holder && holder !== self ? 'name_taken' : null;
  }

  /** `guest-<n>` for WebSocket client c<n>, the address for TCP; `-2`, `-3`… while taken. */
  private defaultName(c: ClientState): string {
    const base = c.transport === 'tcp' ? c.addr : `guest-${c.id.slice(1)}`;
    const taken = (n: string) => [...this.clients.values()].some((o) => o.live && o !== c && o.name === n);
    let name = base;
    for (let k = 2; taken(name); k++) name = `${base}-${k}`;
    return name;
  }
}

// The protocol's syntax, restated small (docs/protocol.md "Topics", "Names"): the model does not borrow the broker's validators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** A surrogate without its pair. */
const LONE = /\p{Cs}/u;
/** Bidi controls, line and paragraph separators: not in names. */
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;

export function isFilter(f: string): boolean {
  const segs = f.split('/');
  return valid(f) && segs.every((s, i) => s === '+' || (s === '#' && i === segs.length - 1) || !/[+#]/.test(s));
}

export function isTopic(t: string): boolean {
  return valid(t) && !/[+#]/.test(t);
}

export function isWildcard(f: string): boolean {
  return /[+#]/.test(f);
}

export function isName(n: string): boolean {
  return n.length >= 1 && n.length <= 64 && !CONTROL.test(n) && !LONE.test(n) && !BIDI.test(n) && n.trim() === n && !/^c\d+$/.test(n);
}

function valid(t: string): boolean {
  const segs = t.split('/');
  return t.length >= 1 && t.length <= 256 && !CONTROL.test(t) && !LONE.test(t) && segs.length <= 16 && segs.every((s) => s.length <= 64); // an empty segment is a segment (`a//b`, `/a`)
}

/** A client as it sees itself (hello): with its address. */
function info(c: ClientInfo): ClientInfo {
  return { id: c.id, name: c.name, addr: c.addr, transport: c.transport };
}

/** How other clients see a client (events, `who` for non-admins): no address. */
function publicInfo(c: ClientInfo): Omit<ClientInfo, 'addr'> {
  return { id: c.id, name: c.name, transport: c.transport };
}

function outcome(): Outcome {
  return { frames: new Map() };
}

function push(out: Outcome, slot: Slot, frame: Expected): void {
  const list = out.frames.get(slot);
  if (list) list.push(frame);
  else out.frames.set(slot, [frame]);
}

function withId(frame: Expected, id: FrameId | undefined): Expected {
  return id === undefined ? frame : { ...frame, id };
}

function errorOf(code: string, id?: FrameId): Expected {
  return withId({ op: 'error', code, message: ANY.text }, id);
}

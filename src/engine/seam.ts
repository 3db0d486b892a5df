// The seam under the protocol core (core.ts): what a deployment supplies, in the spirit of centrifuge's Broker and
// PresenceManager. The core answers every request the same way on every deployment; these narrow parts are where a
// process alone (memory.ts) and a cluster on Redis (redis/) differ. A part answers at once (`T`) or later
// (`Promise<T>`): the in-memory parts always answer at once, so the one-process path stays synchronous (no promise,
// no microtask per request), and `after` chains a step without making one.
import type { FrameId, ProtocolError } from '../protocol/errors.js';
import type { FrameOf, PresenceEvent } from '../protocol/frames.js';
import type { Outgoing } from '../protocol/outgoing.js';
import type { Occupancy, OccupancyListener, PublishResult, Session } from './engine.js';
import type { Position, ResumeTerms } from './resume.js';
import type { RosterPage } from './roster.js';

/** An answer now, or a promise of it. */
export type Maybe<T> = T | Promise<T>;

/** Runs `next` on `value`: at once when it is not a promise (no microtask), else when it resolves. */
export function after<T, R>(value: Maybe<T>, next: (value: T) => Maybe<R>): Maybe<R> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/** Runs `step` on each item in turn, each after the previous one's answer. */
export function each<T>(items: readonly T[], step: (item: T) => Maybe<void>, from = 0): Maybe<void> {
  for (let i = from; i < items.length; i++) {
    const r = step(items[i]!);
    if (r instanceof Promise) return r.then(() => each(items, step, i + 1));
  }
}

/** Waits for every answer (at once when none is a promise). */
export function all(values: Maybe<void>[]): Maybe<void> {
  if (values.some((v) => v instanceof Promise)) return Promise.all(values).then(() => undefined);
}

/** Runs `run`, then `finish` whether it answered or threw (at once, or when its promise settles). */
export function lastly<T>(run: () => Maybe<T>, finish: () => void): Maybe<T> {
  let r: Maybe<T>;
  try {
    r = run();
  } catch (err) {
    finish();
    throw err;
  }
  if (r instanceof Promise) return r.finally(finish);
  finish();
  return r;
}

/**
 * Who published, as the broker stores it: shown to subscribers (`from`), skipped when it asked for no echo. An empty
 * `addr`: not shown (rules.ts publisherOf).
 */
export type Publisher = Pick<Session, 'id' | 'name' | 'addr' | 'transport'>;

/** A resuming `sub`'s answer: the ack's fields, the messages to queue after it, and each topic's position. */
export interface ResumeAnswer {
  ack: Record<string, unknown>;
  messages: Outgoing[];
  /** Live messages at or below these were replayed (or precede the client's position). */
  positions: Map<string, Position>;
  /** Topics (or topic-tree nodes) looked through to find the wildcard's: charged to the client, as a sub's cache walk is. */
  work?: number;
}

/** What a broker keeps of topics that the topic listing and the inspection show (empty where the history is shared). */
export interface HistoryView {
  readonly topicCount: number;
  readonly namesBytes: number;
  topics(): Iterable<[topic: string, position: Position]>;
  position(topic: string): Position | undefined;
}

/**
 * Messages: numbering, history, delivery to the nodes that hear a topic (centrifuge's Broker). A message reaches this
 * process's subscribers through the core's fan-out (Locals.fanOut): at once in memory, from the bus on a cluster.
 */
export interface Broker<S extends Session> {
  /** Changes whenever the broker may have lost topics it can no longer name (docs/protocol.md, Positions). */
  readonly life: string;
  /**
   * Numbers the message ({seq, epoch}), appends it to the topic's history and delivers it; with `key`, once per
   * window. `qos` and `retain`: the MQTT QoS and retain flag it was published with, carried to MQTT subscribers.
   */
  publish(topic: string, data: unknown, from: Publisher | null, echo: boolean, id: FrameId | undefined, key: string | undefined, qos?: 0 | 1 | 2, retain?: boolean): Maybe<PublishResult | ProtocolError>;
  /** Reads the history a resuming `sub` asks for (its terms from resume.ts): the verdict and what to replay. */
  resume(frame: FrameOf<'sub'>, terms: ResumeTerms): Maybe<ResumeAnswer | ProtocolError>;
  /** Live messages to `s` wait from now until release() (it is resuming: its replay goes first). */
  hold(s: S): void;
  release(s: S): void;
  /** `s` was replayed up to `positions`: live messages at or below them are not delivered again. */
  replayedTo(s: S, positions: Map<string, Position>): void;
  /** `s` is gone. */
  forget(s: S): void;
  /** Interest: the first local holder of `filter` arrived (`held`), or the last one left. */
  interest(filter: string, held: boolean): void;
  /** Answers once this process hears what is published to topics `filter` matches. */
  ready(filter: string): Maybe<void>;
  /** The node channel: a direct to client `to` of node `node`; true when it was received there. */
  direct(node: string, to: string, from: { id: string; name: string }, json: string): Maybe<boolean>;
  /** Answers once every delivery already on its way to this process has arrived (a ping's barrier). */
  barrier(): Maybe<void>;
  /** What the topic listing and the inspection show of the history. */
  readonly history: HistoryView;
}

/** A client of any node, as a `send` finds it (`node`: '' for this process). */
export interface Recipient {
  id: string;
  name: string;
  node: string;
}

/** Clients as the whole deployment sees them: records, unique names, `who` pages, presence events (centrifuge's PresenceManager). */
export interface PresenceStore<S extends Session> {
  /** The name a joining `s` gets: `asked` when valid and free, else the first free of `base`, `base-2`, … and why. */
  claimAtJoin(s: S, asked: string | undefined, base: string): Maybe<{ name: string; problem: ProtocolError | null }>;
  /** Claims `name` for `s` (freeing `old`): true when it is now its; an error when the store cannot answer. */
  claimName(s: S, name: string, old: string, id: FrameId | undefined): Maybe<boolean | ProtocolError>;
  /** `s` changed (filters, state): what other processes see of it is updated. */
  record(s: S): Maybe<void>;
  /** Client `id` is gone: its record and its name `name` go. */
  drop(id: string, name: string): Maybe<void>;
  /** A client of another process by id or name (this process's are looked up by the core first). */
  find(idOrName: string, id: FrameId | undefined): Maybe<Recipient | undefined | ProtocolError>;
  /** One `who` page, and how many clients were listed to build it (the asker pays for them). */
  who(topic: string | undefined, after: number, limit: number, admin: boolean, id: FrameId | undefined): Maybe<{ page: RosterPage; listed: number } | ProtocolError>;
  /** A presence event about local client `subject`: every process's watchers of `filter` hear it (this one's too). */
  announce(event: PresenceEvent, subject: S, filter: string, old?: string): void;
}

/** Client ids (`c<digits>`): unique in this process, or across every process sharing the store. */
export interface Ids {
  next(): string;
}

/** A session's requests in arrival order. `A` is the request's argument (a frame): the core passes bound methods, no closure per request. */
export interface Turns<S extends Session> {
  /** A request: runs in `s`'s turn (may be refused `unavailable` when too many wait on the store). */
  request<A>(s: S, run: (s: S, a: A) => Maybe<void>, a: A, id: FrameId | undefined): void;
  /** A step of the session's own (join, leave, activity, ping, regrant): in its turn, never refused. */
  step(s: S, run: () => Maybe<void>, id?: FrameId): void;
  /** A publish: `start` may run before its turn (the store keeps one connection's order), `answer` waits for it. */
  early<A, R>(s: S, start: (s: S, a: A) => Maybe<R>, answer: (s: S, a: A, r: R) => void, a: A, id: FrameId | undefined): void;
}

/** One process: every request runs at once, in the reader's call (nothing ever waits). */
export const AT_ONCE: Turns<Session> = {
  request: (s, run, a) => void run(s, a),
  step: (_s, run) => void run(),
  early: (s, start, answer, a) => {
    const r = start(s, a);
    if (r instanceof Promise) void r.then((done) => answer(s, a, done));
    else answer(s, a, r);
  },
};

/** The deployment's own life: connecting to the store, leaving it, its health, webhooks' occupancy. */
export interface Deployment {
  start(): Promise<void>;
  close(): Promise<void>;
  health(): 'ok' | 'degraded';
  occupancy(listener: OccupancyListener): Occupancy;
}

/** Everything the core runs on. */
export interface Parts<S extends Session> {
  broker: Broker<S>;
  presence: PresenceStore<S>;
  ids: Ids;
  turns: Turns<S>;
  deployment: Deployment;
}

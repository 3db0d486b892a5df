// SseWire: the writer's face of one Server-Sent Events stream. Each frame becomes one event (`data: <frame JSON>`);
// an event that moves the stream's cursor (a message, a changed set of filters) carries it as its `id`, so the
// browser's Last-Event-ID is always the position of the last event it was given. Encoding is per stream (the id is
// the stream's own); the `data:` part is built once per frame and shared.
import type { ServerResponse } from 'node:http';
import type { Wire } from '../../actors/mailbox.js';
import type { Outgoing, Encoding } from '../../protocol/outgoing.js';
import type { ServerFrame } from '../../protocol/frames.js';
import { encodeCursor, type Position } from './cursor.js';
import { filterMatches } from '../../protocol/topic.js';
import { cutUnlessFlushed } from '../socket-wire.js';

/** Topics whose positions one stream remembers; past it the cursor says positions were dropped (`p`). */
export const TRACKED_TOPICS_MAX = 512;

/** `data: <json>\n\n`: the same bytes for every stream. JSON text never holds a raw line break. */
export const sseData: Encoding = (out) => Buffer.from(`data: ${out.json}\n\n`);

const HEARTBEAT = Buffer.from(': heartbeat\n\n');
const EMPTY = Buffer.alloc(0);
/** An own id's meaning: emit the cursor now (after a POST that may have changed the filters). */
export const CURSOR_MARK = Symbol('cursor');
/** An own id's meaning: the pong of a resuming stream's ping, answered after its re-subscribes: write cursors from now. */
export const RESUMED = Symbol('resumed');

/** What one of the stream's own ids stands for (see SseWire.ownIds). */
export type OwnMeaning = string | null | typeof CURSOR_MARK | typeof RESUMED;

/** What the wire reads of its connection: the filters it holds now (the engine keeps them). */
export interface StreamFilters {
  readonly subscriptions: ReadonlySet<string>;
  readonly presence: ReadonlySet<string>;
}

export class SseWire implements Wire {
  readonly transport = 'sse' as const;
  /** No pong exists on SSE: the heartbeat is a comment, and a dead peer shows as a failed write or a closed socket. */
  readonly canPing = false;
  readonly sharedEncoding = false;
  /** Set by the transport once the link exists. */
  filters: StreamFilters | undefined;
  /**
   * Ids of the stream's own frames (never a client's: random, unguessable): a resuming `sub`'s ack is rendered as
   * the stream's verdict on that filter (filter string, or null for the whole stream); a `cursor` mark as an event
   * that carries only the cursor; the `resumed` pong as the end of a resume (ids released, the cursor written).
   */
  readonly ownIds = new Map<string, OwnMeaning>();

  /**
   * Records one of the stream's own frames. At most `bound` are kept (the mailbox's capacity: no more of their acks
   * can be queued at once), the oldest going first: under drop-oldest an ack dropped unwritten never deletes its entry.
   */
  own(id: string, meaning: OwnMeaning, bound: number): void {
    this.ownIds.set(id, meaning);
    while (this.ownIds.size > bound) this.ownIds.delete(this.ownIds.keys().next().value!);
  }
  private readonly positions = new Map<string, Position>();
  private held: { filter: string; presence: boolean }[] = [];
  /** Positions were lost for good (more topics than TRACKED_TOPICS_MAX): the cursor says so until the stream ends. */
  private dropped = false;
  private filtersStale = true;
  private lastId: string | undefined;
  private closed = false;

  constructor(
    private readonly res: ServerResponse,
    /** The engine's life when the stream began (see cursor.ts). */
    private readonly life: string,
    /** Write no cursor until the `resumed` pong: a resuming stream's filters are not back yet. */
    private idsHeld = false,
    /** How long the stream's end may take to flush to a client that does not read before the socket is cut. */
    private readonly closeTimeoutMs = 5000,
  ) {}

  /**
   * A resumed stream starts from its cursor's positions (a reconnect before any new message resumes from them
   * again), and keeps its `p` flag: positions it lost are lost for every later resume too.
   */
  seed(positions: ReadonlyMap<string, Position>, dropped: boolean): void {
    for (const [topic, pos] of positions) {
      if (this.positions.size >= TRACKED_TOPICS_MAX) break;
      this.positions.set(topic, { seq: pos.seq, epoch: pos.epoch });
    }
    this.dropped ||= dropped;
  }

  /** The client may have changed its filters (a POST): look again before the next event. */
  filtersMayChange(): void {
    this.filtersStale = true;
  }

  /** Set by the transport: queues an event carrying the cursor, behind what the stream's mailbox holds. */
  markCursor: (() => void) | undefined;

  /** The server API changed the filters: the cursor says so at once, as after a POST (see Wire). */
  filtersChangedByServer(): void {
    this.filtersMayChange();
    this.markCursor?.();
  }

  /**
   * The `resumed` pong is sent once the engine has answered every earlier request of the stream, its re-subscribes
   * too (on a cluster, once Redis has): the filters it holds now are the resumed ones, so cursors may be written again,
   * by every event written from now on (those already queued too). Refused instead (Redis lost meanwhile), the
   * re-subscribes were answered before it all the same. Told as it is sent, not as it is written: the mailbox may drop
   * it unwritten (drop-oldest), which must not hold the ids for good.
   */
  sending(frame: ServerFrame): void {
    if ((frame.op === 'pong' || frame.op === 'error') && typeof frame.id === 'string' && this.ownIds.get(frame.id) === RESUMED) {
      this.idsHeld = false;
      this.filtersStale = true; // read while held (none back yet): the next event looks again
    }
  }

  encode(out: Outgoing): Buffer {
    const f = out.frame;
    if ((f.op === 'ack' || f.op === 'pong') && typeof f.id === 'string' && this.ownIds.has(f.id)) {
      const meaning = this.ownIds.get(f.id);
      this.ownIds.delete(f.id);
      return meaning === CURSOR_MARK || meaning === RESUMED ? this.cursorEvent() : this.verdict(meaning ?? null, f);
    }
    if (f.op === 'error' && typeof f.id === 'string') this.ownIds.delete(f.id); // a resume refused: said as the error it is
    let moved = this.lastId === undefined;
    if (f.op === 'msg') moved = this.advance(f.topic, f.seq, f.epoch) || moved;
    if (this.filtersStale || f.op === 'ack' || f.op === 'error') moved = this.syncFilters() || moved;
    const data = out.bytesFor(sseData);
    if (!moved || this.idsHeld) return data;
    const id = this.cursor();
    if (id === this.lastId) return data;
    this.lastId = id;
    return Buffer.concat([Buffer.from(`id: ${id}\n`), data]);
  }

  /** The stream's cursor now (what its next moving event carries). */
  cursor(): string {
    return encodeCursor({ life: this.life, filters: this.held, positions: this.positions, flag: this.dropped ? 'p' : '' });
  }

  /** An event that carries only the cursor (after a POST changed the filters): browsers take its id all the same. */
  private cursorEvent(): Buffer {
    if (this.idsHeld) return EMPTY;
    if (!this.syncFilters() && this.lastId !== undefined) return EMPTY;
    const id = this.cursor();
    if (id === this.lastId) return EMPTY;
    this.lastId = id;
    return Buffer.from(`id: ${id}\n\n`);
  }

  private advance(topic: string, seq: number, epoch: string): boolean {
    const known = this.positions.get(topic);
    if (known) {
      known.seq = seq;
      known.epoch = epoch;
      return true;
    }
    if (this.positions.size >= TRACKED_TOPICS_MAX) {
      this.dropped = true;
      return true;
    }
    this.positions.set(topic, { seq, epoch });
    return true;
  }

  /** Takes the filters the engine holds for this stream; drops positions no filter covers. True when they changed. */
  private syncFilters(): boolean {
    this.filtersStale = false;
    const now = this.filters;
    if (!now) return false;
    const subs = now.subscriptions;
    let same = subs.size === this.held.length;
    if (same) {
      let i = 0;
      for (const filter of subs) {
        const h = this.held[i++]!;
        if (h.filter !== filter || h.presence !== now.presence.has(filter)) {
          same = false;
          break;
        }
      }
    }
    if (same) return false;
    this.held = [...subs].map((filter) => ({ filter, presence: now.presence.has(filter) }));
    for (const topic of this.positions.keys()) {
      if (!this.held.some((h) => filterMatches(h.filter, topic))) this.positions.delete(topic);
    }
    return true;
  }

  /** A resuming `sub`'s ack: nothing when recovered, else a `notRecovered` event saying which filter and why. */
  private verdict(filter: string | null, frame: Record<string, unknown>): Buffer {
    if (frame.recovered === true) return EMPTY;
    const body: Record<string, unknown> = { filter, reason: frame.reason ?? 'unknown_position' };
    if (frame.missed !== undefined) body.missed = frame.missed;
    if (frame.positions !== undefined) body.positions = frame.positions;
    if (frame.message !== undefined) body.message = frame.message;
    return Buffer.from(`event: notRecovered\ndata: ${JSON.stringify(body)}\n\n`);
  }

  write(chunk: Buffer): boolean {
    if (this.closed || this.res.destroyed) return true;
    if (chunk.length === 0) return true;
    return this.res.write(chunk);
  }

  onDrain(listener: () => void): void {
    this.res.once('drain', listener);
  }

  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  /** The heartbeat: a comment, written only while nothing else waits (a congested stream needs no keep-alive). */
  ping(): void {
    if (this.closed || this.res.destroyed || this.res.writableLength > 0) return;
    this.res.write(HEARTBEAT);
  }

  /** A last `close` event with the protocol's close code, then the end of the response. */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.res.destroyed) return;
    this.res.end(`event: close\ndata: ${JSON.stringify({ code, reason })}\n\n`);
    cutUnlessFlushed(this.res, this.closeTimeoutMs);
  }

  terminate(): void {
    this.closed = true;
    this.res.destroy();
  }
}

// Roster: `who` as pages. Clients listed in connection order (numeric id), `limit` per page, an opaque cursor
// for the next; each page's entries are encoded once per roster version and shared by every asker. Pure: the
// clock is injected, the hub says when the roster changed: a subscription change drops only the lists it can change.
import { ackFrame, WHO_LIMIT_MAX, type PublicClient, type Transport } from '../protocol/frames.js';
import type { FrameId } from '../protocol/errors.js';
import { Outgoing } from '../protocol/outgoing.js';
import { WHO_BYTES_PER_TOKEN, WHO_LISTED_PER_TOKEN } from './options.js';
import { isWildcard } from '../protocol/topic.js';
import { TopicTree } from './topic-tree.js';

export interface RosterMember {
  readonly id: string;
  readonly name: string;
  readonly addr: string;
  readonly transport: Transport;
  readonly state: string;
  /** The connect hook's, shown to everyone. */
  readonly meta?: Record<string, unknown> | undefined;
}

export interface WhoEntry {
  id: string;
  name: string;
  transport: Transport;
  state: string;
  addr?: string;
  meta?: Record<string, unknown>;
}

/** One page of `who`, encoded: shared by every reply asking for the same page while the roster is unchanged. */
export interface RosterPage {
  /** The JSON array of entries. */
  json: string;
  bytes: number;
  entries: WhoEntry[];
  /**
   * The members listed, for the TCP `user list:` lines: with an address only where docs/protocol.md allows one
   * (a TCP line client, the classic room; anyone, for an admin).
   */
  members: (PublicClient & { addr?: string })[];
  /** Cursor of the next page; undefined on the last. */
  next: string | undefined;
}

export const WHO_LIMIT_DEFAULT = 100;
export { WHO_LIMIT_MAX };
/** Pages are rebuilt at least this often, so `state` (online/idle) is never staler than this. */
const PAGE_TTL_MS = 1000;
const MAX_CACHED_PAGES = 512;

/** A client id's number (`c42` → 42): the order clients are listed in. */
export const numericId = (id: string): number => Number(id.slice(1));

/** The cursor after the member with `id`: opaque to clients (base 36 of the numeric id, prefixed). */
export function cursorAfter(id: string): string {
  return 'a' + numericId(id).toString(36);
}

/** The numeric id a cursor points after, or null when it is not one of ours. */
export function parseCursor(cursor: string): number | null {
  if (!/^a[0-9a-z]{1,11}$/.test(cursor)) return null;
  const n = parseInt(cursor.slice(1), 36);
  return Number.isSafeInteger(n) ? n : null;
}

/** One cached list (all clients, a topic's or a filter's) and its encoded pages. */
interface Listing<T> {
  members: T[];
  pages: Map<string, RosterPage>;
}

export class Roster<T extends RosterMember> {
  private readonly listings = new Map<string, Listing<T>>();
  /** The concrete topics listings are cached for, by segment: a filter finds the ones it matches by walking. */
  private readonly topics = new TopicTree();
  private builtAt = 0;
  /** Pages encoded since pages were last dropped (at least as many as are cached): all of them are bounded together. */
  private pageCount = 0;
  /** Members the last page() had to list and sort (0 when its list was cached): what the asker is charged for. */
  lastBuilt = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Everything is stale (a full cache making room). */
  changed(): void {
    this.listings.clear();
    this.topics.clear();
  }

  /**
   * A client holding `filters` joined, left, renamed or changed state: the lists that may show it are stale (the
   * list of everyone, and those its filters put it in), no others.
   */
  clientChanged(filters: Iterable<string>): void {
    this.listings.delete('');
    for (const filter of filters) this.subscriptionChanged(filter);
  }

  /**
   * A client took or dropped `filter`: only the lists it can change are stale (the topics it matches, and the
   * filter's own list), never the list of everyone; found by walking the filter, not by testing every list.
   */
  subscriptionChanged(filter: string): void {
    if (isWildcard(filter)) this.listings.delete(filter);
    this.topics.removeMatching(filter, (topic) => this.listings.delete(topic));
  }

  /**
   * The page after numeric id `after` (0 = from the start) of the clients `members()` lists under `key`.
   * `admin` pages carry addresses.
   */
  page(key: string, members: () => Iterable<T>, after: number, limit: number, admin: boolean): RosterPage {
    const t = this.now();
    if (t - this.builtAt > PAGE_TTL_MS || this.pageCount >= MAX_CACHED_PAGES) {
      for (const listing of this.listings.values()) listing.pages.clear();
      this.pageCount = 0;
      this.builtAt = t;
    }
    this.lastBuilt = 0;
    const listing = this.listing(key, members);
    const pageKey = `${admin ? 1 : 0}|${after}|${limit}`;
    const cached = listing.pages.get(pageKey);
    if (cached) return cached;
    const list = listing.members;
    // First member with numeric id > after (binary search: lists are sorted by numeric id).
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (numericId(list[mid]!.id) <= after) lo = mid + 1;
      else hi = mid;
    }
    const slice = list.slice(lo, lo + limit);
    const entries = slice.map((m): WhoEntry => {
      const e: WhoEntry = { id: m.id, name: m.name, transport: m.transport, state: m.state };
      if (admin) e.addr = m.addr;
      if (m.meta !== undefined) e.meta = m.meta;
      return e;
    });
    const json = JSON.stringify(entries);
    const page: RosterPage = {
      json,
      bytes: Buffer.byteLength(json),
      entries,
      members: slice.map((m) => (admin || m.transport === 'tcp' ? { id: m.id, name: m.name, transport: m.transport, addr: m.addr } : { id: m.id, name: m.name, transport: m.transport })),
      next: lo + limit < list.length ? cursorAfter(slice.at(-1)!.id) : undefined,
    };
    listing.pages.set(pageKey, page);
    this.pageCount++;
    return page;
  }

  private listing(key: string, members: () => Iterable<T>): Listing<T> {
    let listing = this.listings.get(key);
    if (!listing) {
      // Each id parsed once (a comparator parsing both ids cost 1 µs per member on a shuffled list of 10,000).
      const keyed = Array.from(members(), (m) => ({ n: numericId(m.id), m }));
      const list = keyed.sort((a, b) => a.n - b.n).map((k) => k.m);
      this.lastBuilt = list.length;
      if (this.listings.size >= MAX_CACHED_PAGES) this.changed();
      this.listings.set(key, (listing = { members: list, pages: new Map() }));
      if (key !== '' && !isWildcard(key)) this.topics.add(key);
    }
    return listing;
  }
}

/** `{"op":"ack","id":…,"clients":[…],"next":…}` around a cached page, without re-encoding the page. */
export function whoReply(id: FrameId | undefined, page: RosterPage): Outgoing {
  const head = id === undefined ? '{"op":"ack","clients":' : `{"op":"ack","id":${JSON.stringify(id)},"clients":`;
  const tail = page.next === undefined ? '}' : `,"next":${JSON.stringify(page.next)}}`;
  const frame = ackFrame(id, page.next === undefined ? { clients: page.entries } : { clients: page.entries, next: page.next });
  const out = Outgoing.prebuilt(frame, head + page.json + tail, Buffer.byteLength(head) + page.bytes + tail.length);
  out.roster = page.members;
  return out;
}

/**
 * Queues a `who` page for `s` and charges its inbound rate for it: its size, and the `listed` clients its list had
 * to be built from (a list rebuilt after every change would otherwise be a cheap way to keep the broker sorting).
 */
export function queueWhoPage(s: { mailbox: { push(out: Outgoing): boolean }; rate: { charge(tokens: number): void } | undefined }, id: FrameId | undefined, page: RosterPage, listed: number): void {
  const reply = whoReply(id, page);
  s.mailbox.push(reply);
  s.rate?.charge(Math.floor(reply.bytes / WHO_BYTES_PER_TOKEN) + Math.floor(listed / WHO_LISTED_PER_TOKEN));
}

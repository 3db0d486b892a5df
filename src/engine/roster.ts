// Roster: `who` as pages. Clients listed in connection order (numeric id), `limit` per page, an opaque cursor
// for the next; each page's entries are encoded once per roster version and shared by every asker. Pure: the
// clock is injected, the hub says when the roster changed.
import { WHO_LIMIT_MAX, type ClientInfo, type Transport } from '../protocol/frames.js';

export interface RosterMember {
  readonly id: string;
  readonly name: string;
  readonly addr: string;
  readonly transport: Transport;
  readonly state: string;
}

export interface WhoEntry {
  id: string;
  name: string;
  transport: Transport;
  state: string;
  addr?: string;
}

/** One page of `who`, encoded: shared by every reply asking for the same page while the roster is unchanged. */
export interface RosterPage {
  /** The JSON array of entries. */
  json: string;
  bytes: number;
  entries: WhoEntry[];
  /** The members listed, with their addresses (the TCP `user list:` lines show them). */
  members: ClientInfo[];
  /** Cursor of the next page; undefined on the last. */
  next: string | undefined;
}

export const WHO_LIMIT_DEFAULT = 100;
export { WHO_LIMIT_MAX };
/** Pages are rebuilt at least this often, so `state` (online/idle) is never staler than this. */
const PAGE_TTL_MS = 1000;
const MAX_CACHED_PAGES = 512;

const numericId = (id: string): number => Number(id.slice(1));

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

export class Roster<T extends RosterMember> {
  private version = 0;
  private lists = new Map<string, T[]>();
  private pages = new Map<string, RosterPage>();
  private builtAt = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Someone joined, left, renamed or changed subscriptions or state: cached lists and pages are stale. */
  changed(): void {
    this.version++;
    if (this.lists.size > 0) this.lists = new Map();
    if (this.pages.size > 0) this.pages = new Map();
  }

  get generation(): number {
    return this.version;
  }

  /**
   * The page after numeric id `after` (0 = from the start) of the clients `members()` lists under `key`.
   * `admin` pages carry addresses.
   */
  page(key: string, members: () => Iterable<T>, after: number, limit: number, admin: boolean): RosterPage {
    const t = this.now();
    if (t - this.builtAt > PAGE_TTL_MS) {
      this.pages = new Map();
      this.builtAt = t;
    }
    const pageKey = `${admin ? 1 : 0}|${after}|${limit}|${key}`;
    const cached = this.pages.get(pageKey);
    if (cached) return cached;
    const list = this.sorted(key, members);
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
      return e;
    });
    const json = JSON.stringify(entries);
    const page: RosterPage = {
      json,
      bytes: Buffer.byteLength(json),
      entries,
      members: slice.map((m) => ({ id: m.id, name: m.name, addr: m.addr, transport: m.transport })),
      next: lo + limit < list.length ? cursorAfter(slice.at(-1)!.id) : undefined,
    };
    if (this.pages.size >= MAX_CACHED_PAGES) this.pages = new Map();
    this.pages.set(pageKey, page);
    return page;
  }

  private sorted(key: string, members: () => Iterable<T>): T[] {
    let list = this.lists.get(key);
    if (!list) {
      list = [...members()].sort((a, b) => numericId(a.id) - numericId(b.id));
      if (this.lists.size >= MAX_CACHED_PAGES) this.lists = new Map();
      this.lists.set(key, list);
    }
    return list;
  }
}

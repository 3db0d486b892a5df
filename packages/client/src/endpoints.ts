// Endpoints: the broker URLs a client dials, checked once at construction. Relative URLs resolve against the page
// (a bad one, or one in Node, is a `bad_option`, never a crash later inside a timer); http(s) becomes ws(s); a URL
// without a path means `/ws`. Several URLs (the nodes of a cluster) are dialled in turn.
import { SwitchboardError } from './errors.js';

export class Endpoints {
  private readonly urls: readonly URL[];
  /** Which URL the next dial uses; it moves on whenever a connection is lost or a dial fails. */
  private turn = 0;

  constructor(url: unknown, base: string | undefined = pageAddress()) {
    const list = typeof url === 'string' ? [url] : url;
    if (!Array.isArray(list) || list.length === 0) {
      throw new SwitchboardError('bad_option', 'url must be a WebSocket URL (ws://host:port/ws) or a non-empty array of them');
    }
    this.urls = list.map((u: unknown) => parseEndpoint(u, base));
  }

  /** The URL to dial now, as checked (without token or name): what the client remembers per URL goes by it. */
  get here(): string {
    return this.urls[this.turn % this.urls.length]!.toString();
  }

  /** The URL to dial now, with `token` and `name` in its query. */
  current(token: string | undefined, name: string | undefined): string {
    const url = new URL(this.here);
    if (token !== undefined) url.searchParams.set('token', token);
    if (name !== undefined) url.searchParams.set('name', name);
    return url.toString();
  }

  /** The plain-HTTP twin of the current URL (same path and query, with `token`): what `diagnose()` asks. */
  probe(token: string | undefined): string {
    const url = new URL(this.current(token, undefined));
    url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
    return url.toString();
  }

  /** The next dial uses the next URL (one URL: the same one). */
  next(): void {
    this.turn++;
  }

  get all(): readonly string[] {
    return this.urls.map((u) => u.toString());
  }
}

function parseEndpoint(raw: unknown, base: string | undefined): URL {
  const bad = (why: string) => new SwitchboardError('bad_option', `url ${JSON.stringify(raw)}: ${why}`);
  if (typeof raw !== 'string' || raw.trim() === '') throw bad('must be a non-empty string');
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    throw bad(base === undefined ? 'not an absolute URL; outside a browser page give the whole address, e.g. ws://127.0.0.1:8080/ws' : 'not a URL');
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw bad(`the scheme must be ws:, wss:, http: or https:, not ${url.protocol}`);
  if (url.hash) url.hash = '';
  // The broker's endpoint is /ws; a bare host:port means it (as `switchboard check` does).
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/ws';
  return url;
}

/** The page's address in a browser (relative URLs resolve against it); undefined elsewhere. */
function pageAddress(): string | undefined {
  const href = (globalThis as { location?: { href?: unknown } }).location?.href;
  return typeof href === 'string' ? href : undefined;
}

// RequestTarget: the one parse of an HTTP request target (`/path?query`), for plain requests and upgrades alike.
// Never throws: a target that is not origin-form (`//`, `*`, `http://x/`, empty) is null, answered 400 by the caller.

/** The target as a URL on a fixed host, or null when it is not `/path[?query]`. The request's Host is never used. */
export function parseTarget(raw: string | undefined): URL | null {
  // `//x` would parse as a host; `*` and absolute-form targets are for proxies, which this broker is not.
  if (raw === undefined || raw[0] !== '/' || raw[1] === '/') return null;
  try {
    return new URL(`http://localhost${raw}`);
  } catch {
    return null;
  }
}

/** What may be logged of a target: its path only, so a `?token=` never reaches the logs. */
export function loggablePath(raw: string | undefined): string {
  if (raw === undefined) return '';
  const q = raw.indexOf('?');
  return raw.slice(0, Math.min(q < 0 ? raw.length : q, 200));
}

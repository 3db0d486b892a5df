// OriginPolicy: which browser pages may open a WebSocket here. Browsers always send Origin on a WebSocket
// handshake; other clients usually do not, and a missing Origin is allowed (it protects nobody's cookies).

export class OriginPolicy {
  private readonly anyOrigin: boolean;
  private readonly origins: ReadonlySet<string>;

  /** `allowed`: comma-separated origins (`https://app.example.com`), `*` for any, or undefined for same host only. */
  constructor(allowed: string | undefined) {
    const entries = (allowed ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    this.anyOrigin = entries.includes('*');
    this.origins = new Set(entries.filter((e) => e !== '*').map(normalise));
  }

  /** Whether a handshake with this Origin header, arriving with this Host header, may proceed. */
  allows(origin: string | undefined, host: string | undefined): boolean {
    if (origin === undefined) return true;
    if (this.anyOrigin) return true;
    if (this.origins.size > 0) return this.origins.has(normalise(origin));
    // Default: the page must come from the host it connects to (scheme aside, as TLS may end at a proxy).
    if (host === undefined) return false;
    try {
      return new URL(origin).host.toLowerCase() === host.toLowerCase();
    } catch {
      return false;
    }
  }
}

/** `https://Example.com:443/` and `https://example.com` are the same origin; `null` stays `null`. */
function normalise(origin: string): string {
  try {
    const o = new URL(origin).origin;
    return o === 'null' ? origin.toLowerCase() : o;
  } catch {
    return origin.toLowerCase();
  }
}

// OriginPolicy: which browser pages may open a WebSocket here. Browsers always send Origin on a WebSocket
// handshake; other clients usually do not, and a missing Origin is allowed (it protects nobody's cookies).
// The request's own Host header is never trusted: under DNS rebinding it is the attacker's name too.
import { networkInterfaces } from 'node:os';
import { ConfigError } from '../config.js';

export interface OriginSettings {
  /** Comma-separated origins (`https://app.example.com`), `*` for any, or undefined for the broker's own hosts only. */
  allowedOrigins: string | undefined;
  /** Comma-separated `host[:port]` names the broker is reached by (behind a proxy); without a port, any port. */
  publicHost: string | undefined;
}

const LOOPBACK = ['localhost', '127.0.0.1', '[::1]'];
const WILDCARD = new Set(['0.0.0.0', '::', '']);

export class OriginPolicy {
  private readonly anyOrigin: boolean;
  private readonly origins: ReadonlySet<string>;
  /** `host:port` of the broker's bound address and loopback names, filled in once it listens. */
  private readonly ownHosts = new Set<string>();
  /** `--public-host` entries: `host:port`, or a bare name meaning any port. */
  private readonly publicHosts = new Set<string>();
  private readonly publicNames = new Set<string>();

  constructor(settings: OriginSettings) {
    const entries = list(settings.allowedOrigins);
    // An origin is scheme://host[:port]: a bare name could never match one, and (a list replacing the broker's own
    // addresses) it would also refuse the broker's own chat page. Said at start, not found out from 403s.
    for (const e of entries) {
      if (e !== '*' && !parse(e)) throw new ConfigError(`--allowed-origins takes origins (scheme://host[:port]) or '*', got '${e}'`);
    }
    this.anyOrigin = entries.includes('*');
    this.origins = new Set(entries.filter((e) => e !== '*').map(normalise));
    for (const entry of list(settings.publicHost)) {
      const m = /^(\[[0-9a-f:.]+\]|[^\s:/[\]@]+)(?::(\d{1,5}))?$/i.exec(entry);
      if (!m || (m[2] !== undefined && Number(m[2]) > 65535)) throw new ConfigError(`--public-host takes host[:port] entries, got '${entry}'`);
      if (m[2] === undefined) this.publicNames.add(hostKey(m[1]!));
      else this.publicHosts.add(`${hostKey(m[1]!)}:${Number(m[2])}`);
    }
  }

  /** Once listening: the bound address (every interface's address for 0.0.0.0 / ::) and loopback names at `port`. */
  listeningOn(host: string, port: number): void {
    const hosts = new Set(LOOPBACK);
    if (WILDCARD.has(host)) {
      for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) hosts.add(a.family === 'IPv6' ? `[${a.address}]` : a.address);
    } else {
      hosts.add(host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);
    }
    for (const h of hosts) this.ownHosts.add(`${hostKey(h)}:${port}`);
  }

  /**
   * Whether a request naming this `Host` is addressed to this broker: one of its own addresses (loopback included)
   * at its port, or a `--public-host`. A rebound name (DNS rebinding) is not, so a page served under it cannot read
   * the API. No Host header (HTTP/1.0 tools) is allowed.
   */
  servesHost(host: string | undefined): boolean {
    if (host === undefined) return true;
    const url = parse(`http://${host}`);
    if (!url) return false;
    const name = url.hostname.toLowerCase();
    const hostPort = `${name}:${effectivePort(url)}`;
    return this.publicNames.has(name) || this.publicHosts.has(hostPort) || this.ownHosts.has(hostPort);
  }

  /** Whether a handshake carrying this Origin header may proceed. */
  allows(origin: string | undefined): boolean {
    if (origin === undefined || this.anyOrigin) return true;
    if (this.origins.has(normalise(origin))) return true;
    const url = parse(origin);
    if (!url) return false;
    const name = url.hostname.toLowerCase();
    const hostPort = `${name}:${effectivePort(url)}`;
    // The public names are the broker's own whatever else is listed; its addresses only while no list replaces them.
    if (this.publicNames.has(name) || this.publicHosts.has(hostPort)) return true;
    return this.origins.size === 0 && this.ownHosts.has(hostPort);
  }
}

function list(value: string | undefined): string[] {
  return (value ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

function parse(origin: string): URL | null {
  try {
    const url = new URL(origin);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
  } catch {
    return null;
  }
}

/** `host` as URL.hostname spells it (lower case, IPv6 compressed, in brackets). */
function hostKey(host: string): string {
  return parse(`http://${host}`)?.hostname ?? host.toLowerCase();
}

/** Scheme aside (TLS may end at a proxy), a page's port: explicit, or its scheme's default. */
function effectivePort(url: URL): number {
  return url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
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

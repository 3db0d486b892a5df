// Admission: counts open connections in total and per client IP, so a connection over a limit is refused
// before it costs a parser, a WebSocket, an actor or a mailbox. Every accepted socket (HTTP, WebSocket, TCP)
// takes a slot from the moment it is accepted and gives it back once, when it closes.
import type { Logger } from 'pino';

export interface Refusal {
  status: 503 | 429;
  statusText: string;
  message: string;
  /** The setting that refused it, for logs and docs. */
  flag: '--max-connections' | '--max-connections-per-ip';
  limit: number;
}

export interface AdmissionLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
}

/** What Admission needs of a socket to hold a slot for its lifetime. */
export interface SlotHolder {
  readonly remoteAddress?: string | undefined;
  readonly destroyed: boolean;
  once(event: 'close', listener: () => void): unknown;
}

export class Admission {
  private open = 0;
  private readonly byIp = new Map<string, number>();
  private readonly holders = new WeakSet<SlotHolder>();
  private readonly refusals: RefusalLog | undefined;

  constructor(
    private readonly limits: AdmissionLimits,
    log?: Logger,
  ) {
    this.refusals = log && new RefusalLog(log);
  }

  /** Takes a slot for a connection from `ip`: a release function (safe to call more than once), or the refusal. */
  admit(ip: string): (() => void) | Refusal {
    if (this.open >= this.limits.maxConnections) {
      return this.refuse({ status: 503, statusText: 'Service Unavailable', message: `server full: ${this.limits.maxConnections} connections`, flag: '--max-connections', limit: this.limits.maxConnections });
    }
    const fromIp = this.byIp.get(ip) ?? 0;
    if (fromIp >= this.limits.maxConnectionsPerIp) {
      return this.refuse({ status: 429, statusText: 'Too Many Requests', message: `at most ${this.limits.maxConnectionsPerIp} connections per IP address`, flag: '--max-connections-per-ip', limit: this.limits.maxConnectionsPerIp });
    }
    this.open++;
    this.byIp.set(ip, fromIp + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open--;
      const left = this.byIp.get(ip)! - 1;
      if (left === 0) this.byIp.delete(ip);
      else this.byIp.set(ip, left);
    };
  }

  /**
   * Takes a slot for `socket` until it closes; undefined when it holds one, else the refusal. A socket that already
   * holds a slot (an HTTP socket being upgraded to a WebSocket) keeps it: one socket, one slot.
   */
  claim(socket: SlotHolder): Refusal | undefined {
    if (this.holders.has(socket)) return undefined;
    const slot = this.admit(socket.remoteAddress ?? 'unknown');
    if (typeof slot !== 'function') return slot;
    this.holders.add(socket);
    // Already gone: its 'close' may have fired before we could listen.
    if (socket.destroyed) slot();
    else socket.once('close', slot);
    return undefined;
  }

  /** Connections holding a slot now. */
  get size(): number {
    return this.open;
  }

  connectionsFrom(ip: string): number {
    return this.byIp.get(ip) ?? 0;
  }

  private refuse(refusal: Refusal): Refusal {
    this.refusals?.record(refusal, this.open);
    return refusal;
  }
}

/** Logs refused connections at most once per interval, with counts per limit: a flood of refusals is one line a second. */
export class RefusalLog {
  private counts = new Map<Refusal['flag'], { limit: number; n: number }>();
  private timer: NodeJS.Timeout | undefined;
  private open = 0;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 1000,
  ) {}

  record(refusal: Refusal, open: number): void {
    const entry = this.counts.get(refusal.flag) ?? { limit: refusal.limit, n: 0 };
    entry.n++;
    this.counts.set(refusal.flag, entry);
    this.open = open;
    // The first refusal after a quiet interval is reported at once; the rest are summed until the timer fires.
    if (!this.timer) this.flush();
  }

  private flush(): void {
    if (this.counts.size === 0) {
      this.timer = undefined;
      return;
    }
    const refused = Object.fromEntries([...this.counts].map(([flag, { n }]) => [flag, n]));
    const limits = [...this.counts].map(([flag, { limit }]) => `${flag} ${limit}`).join(', ');
    this.log.warn({ refused, open: this.open, intervalMs: this.intervalMs }, `connections refused: limit reached (${limits}); raise the flag if this load is legitimate`);
    this.counts = new Map();
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }
}

// Admission: counts open connections in total and per client IP, so a connection over a limit is refused
// before it costs a parser, a WebSocket, an actor or a mailbox. Every accepted socket (HTTP, WebSocket, TCP)
// takes a slot from the moment it is accepted and gives it back once, when it closes.
import type { Logger } from 'pino';

export interface Refusal {
  status: 503 | 429;
  statusText: string;
  /** For the client: what it hit. */
  message: string;
  /** For the operator's log: which limit, its value, and the flag that raises it. */
  limit: string;
  value: number;
  flag: '--max-connections' | '--max-connections-per-ip';
}

/** The refusal as the operator reads it in the log: `… 1000 connections per IP address (raise with --max-connections-per-ip)`. */
export function refusalSummary(r: Refusal): string {
  return `${r.value} ${r.value === 1 ? 'connection' : 'connections'} ${r.limit} reached (raise with ${r.flag})`;
}

export interface AdmissionLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
}

/** What Admission needs of a socket to hold a slot for its lifetime. */
export interface SlotHolder {
  readonly remoteAddress?: string | undefined;
  readonly destroyed: boolean;
  on(event: 'close', listener: (this: SlotHolder) => void): unknown;
}

export class Admission {
  private open = 0;
  private readonly byIp = new Map<string, number>();
  /** Sockets holding a slot, with the IP it was counted under. */
  private readonly holders = new WeakMap<SlotHolder, string>();
  private readonly refusals: RefusalLog | undefined;
  /** The one 'close' listener of every socket holding a slot (the emitter calls it with the socket as `this`). */
  private readonly onClose: (this: SlotHolder) => void;

  constructor(
    private readonly limits: AdmissionLimits,
    log?: Logger,
  ) {
    this.refusals = log && new RefusalLog(log);
    const admission = this;
    this.onClose = function (this: SlotHolder) {
      admission.giveBack(this);
    };
  }

  /** Takes a slot for a connection from `ip`: a release function (safe to call more than once), or the refusal. */
  admit(ip: string): (() => void) | Refusal {
    const refused = this.take(ip);
    if (refused) return refused;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.release(ip);
    };
  }

  /**
   * Takes a slot for `socket` until it closes; undefined when it holds one, else the refusal. A socket that already
   * holds a slot (an HTTP socket being upgraded to a WebSocket) keeps it: one socket, one slot. What a socket holds
   * is one entry (its IP) in a weak map and one listener shared by every socket: no closure, no `once` wrapper per
   * connection (per-connection memory, issue 21).
   */
  claim(socket: SlotHolder): Refusal | undefined {
    if (this.holders.has(socket)) return undefined;
    const ip = socket.remoteAddress ?? 'unknown';
    const refused = this.take(ip);
    if (refused) return refused;
    this.holders.set(socket, ip);
    // Already gone: its 'close' may have fired before we could listen.
    if (socket.destroyed) this.giveBack(socket);
    else socket.on('close', this.onClose);
    return undefined;
  }

  /** The slot of a socket that closed (once: its entry goes with it). */
  private giveBack(socket: SlotHolder): void {
    const ip = this.holders.get(socket);
    if (ip === undefined) return;
    this.holders.delete(socket);
    this.release(ip);
  }

  private take(ip: string): Refusal | undefined {
    if (this.open >= this.limits.maxConnections) {
      const value = this.limits.maxConnections;
      return this.refuse({ status: 503, statusText: 'Service Unavailable', message: `server full: ${value} connections`, limit: 'in total', value, flag: '--max-connections' });
    }
    const fromIp = this.byIp.get(ip) ?? 0;
    if (fromIp >= this.limits.maxConnectionsPerIp) {
      const value = this.limits.maxConnectionsPerIp;
      return this.refuse({ status: 429, statusText: 'Too Many Requests', message: `at most ${value} connections per IP address`, limit: 'per IP address', value, flag: '--max-connections-per-ip' });
    }
    this.open++;
    this.byIp.set(ip, fromIp + 1);
    return undefined;
  }

  private release(ip: string): void {
    this.open--;
    const left = this.byIp.get(ip)! - 1;
    if (left === 0) this.byIp.delete(ip);
    else this.byIp.set(ip, left);
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
  private counts = new Map<Refusal['flag'], { sample: Refusal; n: number }>();
  private timer: NodeJS.Timeout | undefined;
  private open = 0;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 1000,
  ) {}

  record(refusal: Refusal, open: number): void {
    const entry = this.counts.get(refusal.flag) ?? { sample: refusal, n: 0 };
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
    for (const { sample, n } of this.counts.values()) {
      const { status, limit, value, flag } = sample;
      this.log.warn(
        { refused: n, open: this.open, intervalMs: this.intervalMs, status, limit, value, flag },
        `connections refused (${n}): ${refusalSummary(sample)}`,
      );
    }
    this.counts = new Map();
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }
}

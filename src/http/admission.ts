// Admission: counts open connections in total and per client IP, so a connection over a limit is refused
// before it costs a WebSocket, an actor or a mailbox. Every transport takes a slot and gives it back once.

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

export class Admission {
  private open = 0;
  private readonly byIp = new Map<string, number>();

  constructor(private readonly limits: AdmissionLimits) {}

  /** Takes a slot for a connection from `ip`: a release function (safe to call more than once), or the refusal. */
  admit(ip: string): (() => void) | Refusal {
    if (this.open >= this.limits.maxConnections) {
      const value = this.limits.maxConnections;
      return { status: 503, statusText: 'Service Unavailable', message: `server full: ${value} connections`, limit: 'in total', value, flag: '--max-connections' };
    }
    const fromIp = this.byIp.get(ip) ?? 0;
    if (fromIp >= this.limits.maxConnectionsPerIp) {
      const value = this.limits.maxConnectionsPerIp;
      return { status: 429, statusText: 'Too Many Requests', message: `at most ${value} connections per IP address`, limit: 'per IP address', value, flag: '--max-connections-per-ip' };
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

  /** Connections holding a slot now. */
  get size(): number {
    return this.open;
  }

  connectionsFrom(ip: string): number {
    return this.byIp.get(ip) ?? 0;
  }
}

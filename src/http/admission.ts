// Admission: counts open connections in total and per client IP, so a connection over a limit is refused
// before it costs a WebSocket, an actor or a mailbox. Every transport takes a slot and gives it back once.

export interface Refusal {
  status: 503 | 429;
  statusText: string;
  message: string;
}

export interface AdmissionLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
}

export class Admission {
  private open = 0;
  private readonly byIp = new Map<string, number>();

  constructor(private readonly limits: AdmissionLimits) {}

  /** The refusal a connection from `ip` would get now, without taking a slot (the `GET /ws` diagnosis). */
  refusal(ip: string): Refusal | undefined {
    if (this.open >= this.limits.maxConnections) {
      return { status: 503, statusText: 'Service Unavailable', message: `server full: ${this.limits.maxConnections} connections` };
    }
    if ((this.byIp.get(ip) ?? 0) >= this.limits.maxConnectionsPerIp) {
      return { status: 429, statusText: 'Too Many Requests', message: `at most ${this.limits.maxConnectionsPerIp} connections per IP address` };
    }
    return undefined;
  }

  /** Takes a slot for a connection from `ip`: a release function (safe to call more than once), or the refusal. */
  admit(ip: string): (() => void) | Refusal {
    const refused = this.refusal(ip);
    if (refused) return refused;
    const fromIp = this.byIp.get(ip) ?? 0;
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

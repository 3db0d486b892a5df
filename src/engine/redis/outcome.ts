// Whether a failed Redis command may have run: what a publish's failure is answered (docs/protocol.md, error codes).
// `unavailable` promises nothing happened, so it is only said of a command that was never sent: a publish goes out
// only on a ready connection to its key's master (Reach), and one that was sent and then timed out or lost its
// connection may have run (`outcome_unknown`: a retry with the same idempotency key publishes it once).
import type { Cluster, Redis } from 'ioredis';

/** Errors of a command that may have been written and run: a timeout, or its connection broke while it was out. */
const MAYBE_SENT = /Command timed out|Connection is closed|ECONNRESET|EPIPE|ETIMEDOUT|max retries per request/i;

/** True when `err`, the failure of a command that was sent, says it may have run. */
export function maybeRan(err: unknown): boolean {
  return MAYBE_SENT.test(String((err as Error)?.message ?? err));
}

/**
 * Sends a command only when it goes out at once on a ready connection: one not sent surely did not run. On a Redis
 * Cluster, ioredis would otherwise route a command for a master it has no ready connection to: it queues the command
 * on a connection it is still opening (a master it has not reached yet, or one whose connection was lost, found again
 * through a redirect) and writes it once that is up, or sends it to another master, whose redirect takes it on;
 * either way a command the node had judged "not sent" could run. So Reach keeps the masters' connections open (each
 * is opened as soon as ioredis creates it, once the cluster is ready) and a command for a master it has no ready
 * connection to waits, up to `waitMs`, for one (opening it, or refreshing the slot table at most once a second when
 * ioredis has none): then it goes out on it, or, not sent, is refused. Waiting commands of one slot go in the order
 * they came, and before any later one.
 */
export class Reach {
  private lastRefresh = -Infinity;
  private waiters: { key: string; slot: number; done: (sent: boolean) => void; timer: NodeJS.Timeout }[] = [];

  constructor(
    private readonly cmd: Redis | Cluster,
    private readonly waitMs: number,
  ) {
    if (!isCluster(cmd)) return;
    const changed = (): void => this.recheck();
    const open = (conn: Redis): void => {
      if (conn.status === 'wait') conn.connect().catch(() => undefined);
    };
    for (const conn of cmd.nodes('all')) conn.on('ready', changed);
    cmd.on('+node', (conn: Redis) => {
      conn.on('ready', changed);
      // Not before the cluster is ready: its own ready check goes through a lazily opened connection.
      if (cmd.status === 'ready') open(conn);
    });
    cmd.on('ready', () => {
      cmd.nodes('master').forEach(open);
      changed();
    });
    cmd.on('refresh', changed);
    // A connection that ended (refused, reset) while commands wait for its master: that master is unreachable now;
    // they are refused at once rather than at the end of their wait.
    cmd.on('-node', (conn: Redis) => this.unreachable(`${conn.options.host}:${conn.options.port}`));
    if (cmd.status === 'ready') cmd.nodes('master').forEach(open);
  }

  /**
   * Whether a command on `key` can go out at once: true now, false never (one Redis, not connected), or a promise of
   * it (a Redis Cluster master not reached yet): true once the command goes out at once, false after `waitMs`.
   */
  when(key: string): boolean | Promise<boolean> {
    const { cmd } = this;
    if (!isCluster(cmd) || cmd.status !== 'ready') return readyFor(cmd, key);
    const slot = keySlot(key);
    if (!this.waiters.some((w) => w.slot === slot) && readyFor(cmd, key)) return true;
    return new Promise<boolean>((done) => {
      const waiter = {
        key,
        slot,
        done,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          done(false);
        }, this.waitMs),
      };
      this.waiters.push(waiter);
      this.reachFor(key);
    });
  }

  /** Waiting commands whose master is ready now go, in the order they came. */
  private recheck(): void {
    if (this.waiters.length === 0) return;
    const waiting = this.waiters;
    this.waiters = [];
    const blocked = new Set<number>();
    for (const w of waiting) {
      if (!blocked.has(w.slot) && readyFor(this.cmd, w.key)) {
        clearTimeout(w.timer);
        w.done(true);
      } else {
        blocked.add(w.slot);
        this.waiters.push(w);
      }
    }
    for (const w of this.waiters) this.reachFor(w.key);
  }

  /** Refuses the waiting commands whose master is `address` (host:port). */
  private unreachable(address: string): void {
    if (this.waiters.length === 0 || !isCluster(this.cmd)) return;
    const slots = this.cmd.slots;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (slots[w.slot]?.[0] === address) {
        clearTimeout(w.timer);
        w.done(false);
      } else this.waiters.push(w);
    }
  }

  /** Opens the connection to `key`'s master, or, when ioredis has none, refreshes the slot table (once a second). */
  private reachFor(key: string): void {
    const { cmd } = this;
    if (!isCluster(cmd) || cmd.status !== 'ready') return;
    const owner = cmd.slots[keySlot(key)]?.[0];
    const conn = cmd.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner);
    if (conn?.status === 'wait') conn.connect().catch(() => undefined);
    else if (!conn && performance.now() - this.lastRefresh >= 1000) {
      this.lastRefresh = performance.now();
      cmd.refreshSlotsCache();
    }
  }
}

function isCluster(cmd: Redis | Cluster): cmd is Cluster {
  return 'slots' in cmd;
}

/**
 * Whether a command on `key` goes out at once on a ready connection (rather than into a node connection's offline
 * queue, from which a failure means it was never written). On a Redis Cluster: the connection of the master that
 * serves the key's slot, as the command connection's slot table says.
 */
export function readyFor(cmd: Redis | Cluster, key: string): boolean {
  if (cmd.status !== 'ready') return false;
  if (!('slots' in cmd)) return true;
  const owner = cmd.slots[keySlot(key)]?.[0];
  if (owner === undefined) return false;
  return cmd.nodes('master').some((n) => `${n.options.host}:${n.options.port}` === owner && n.status === 'ready');
}

/** The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the text in its first `{…}`, when not empty) mod 16384. */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key);
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b); // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i]! << 8;
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

// Whether a failed Redis command may have run: what a publish's failure is answered (docs/protocol.md, error codes).
// `unavailable` promises nothing happened, so it is only said of a command that was never written: each publish call
// goes out as a command that knows whether ioredis wrote it (sendWritten). One that was written and then timed out or
// lost its connection may have run (`outcome_unknown`: a retry with the same idempotency key publishes it once), and
// is never sent again by ioredis.
import { Command, type Cluster, type Redis } from 'ioredis';

/** Errors of a command that may have been written and run: a timeout, or its connection broke while it was out. */
const MAYBE_SENT = /Command timed out|Connection is closed|ECONNRESET|EPIPE|ETIMEDOUT|max retries per request/i;

/** True when `err`, the failure of a command, says it may have run: not one that was never written (NotSent). */
export function maybeRan(err: unknown): boolean {
  return !(err instanceof NotSent) && MAYBE_SENT.test(String((err as Error)?.message ?? err));
}

/** The failure of a command that was never written to Redis: it surely did not run (`unavailable`). */
export class NotSent extends Error {
  constructor(cause: Error) {
    super(`not sent: ${cause.message}`);
  }
}

const TIMED_OUT = /Command timed out/;
/** Error replies of a Redis that did not run the command (a Redis Cluster redirecting or refusing it, a loading Redis). */
const NOT_RUN = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|LOADING|MASTERDOWN|READONLY|NOSCRIPT) /;
/** Of those, the ones ioredis's cluster retries after a delay (not a redirect, which it follows at once). */
const NOT_NOW = /^(TRYAGAIN|CLUSTERDOWN) /;
/** What ioredis rejects a command with when its connection closes (written or not). */
const CLOSED = 'Connection is closed.';
/** The same for a command that was written: a message of its own, which ioredis's cluster does not send again. */
const WRITTEN_CLOSED = 'Connection is closed (the command was written)';
/**
 * And for one that was not: not sent again either. The cluster's failover retry would send it after a slot refresh
 * and a redirect from a random master, after a later call of its slot that went out at once (Reach): out of order.
 */
const UNWRITTEN_CLOSED = 'Connection is closed (the command was not written)';

/** A command that notes when ioredis writes it to a connection (toWritable is what each write asks it for). */
class WrittenCommand extends Command {
  written = false;

  override toWritable(socket: object): string | Buffer {
    this.written = true;
    return super.toWritable(socket);
  }
}

/**
 * Sends `name args` on `conn` as a command that knows whether it was written. Resolves with its reply (UTF-8);
 * rejects with NotSent when it failed without ever being written (and not by timing out: it may still be queued).
 * ioredis may queue it on a connection still opening, or send it on after a redirect: what counts is whether it was
 * written, whenever. When its connection closes, it fails with an error of its own: ioredis's cluster sends a command
 * that failed with "Connection is closed." again after a slot refresh (its failover retry, kept for other commands),
 * which would run a written publish twice, and send an unwritten one after later calls of its slot (out of order).
 */
export function sendWritten(conn: Redis | Cluster, name: string, args: (string | number)[]): Promise<unknown> {
  const command = new WrittenCommand(name, args, { replyEncoding: 'utf8' });
  void conn.sendCommand(command);
  // The cluster has put its own reject (redirects, retries) on the command by now; a close after the write goes to
  // it under the other message.
  const reject = command.reject;
  command.reject = (err: Error) => {
    // A redirect or a refusal is Redis saying it did not run it: as if unwritten, until ioredis writes it again.
    if (NOT_RUN.test(err.message)) command.written = false;
    // Not retried by ioredis either (a slot between two masters, a cluster down): its delay queue would send the
    // call after later calls of its slot. Refused now, unsent.
    if (NOT_NOW.test(err.message)) return reject(new Error(`not retried: ${err.message}`));
    reject(err.message === CLOSED ? new Error(command.written ? WRITTEN_CLOSED : UNWRITTEN_CLOSED) : err);
  };
  return command.promise.catch((err: unknown) => {
    // A command that timed out unwritten may still sit in a queue of ioredis's and be written later: not NotSent.
    throw command.written || TIMED_OUT.test(String((err as Error)?.message)) ? err : new NotSent(err as Error);
  });
}

/**
 * Whether a PUBLISH on one Redis (not a Cluster) that counted no receivers surely reached nobody: when that Redis has
 * no replica. A replica's subscribers (a node that still listens on a demoted master during a failover) get what is
 * published on its master, uncounted. False when it has one, or when Redis cannot say.
 */
export async function reachedNobody(conn: Redis): Promise<boolean> {
  const info = await conn.info('replication').catch(() => '');
  return /^role:master\r?$/m.test(info) && /^connected_slaves:0\r?$/m.test(info);
}

/**
 * Sends a publish call only when it goes out at once on a ready connection to its master, in the order calls were
 * made. On a Redis Cluster, ioredis would otherwise route a call for a master it has no ready connection to: it
 * queues the call on a connection it is still opening (a master it has not reached yet, or one whose connection was
 * lost, found again through a redirect), sends it to another master whose redirect takes it on, or refuses it unsent
 * and retries it after a slot refresh: calls of one slot could then go out of the order they were made in (a
 * publish made later numbered before one made earlier). So a call for a master it has no ready connection to
 * waits, up to `waitMs`, for one (Reach opens it, or refreshes the slot table at most once a second when ioredis has
 * none), and is refused at once when a connection to that master fails: then it goes out on it, or, not sent, is
 * refused. Waiting calls of one slot go in the order they came, and before any later one. (Whether a call that went
 * out may have run is sendWritten's to tell.)
 */
export class Reach {
  private lastRefresh = -Infinity;
  private waiters: { key: string; slot: number; done: (sent: boolean) => void; timer: NodeJS.Timeout }[] = [];

  constructor(
    private readonly cmd: Redis | Cluster,
    private readonly waitMs: number,
  ) {
    if (!isCluster(cmd)) return;
    // Connections are opened only for a publish waiting on one (reachFor), never all at once: a command ioredis routes
    // to a connection still opening is refused unsent (the cluster has no offline queue) and retried after a slot
    // refresh, so opening every master's at the cluster's ready would fail the node's first commands.
    const changed = (): void => this.recheck();
    for (const conn of cmd.nodes('all')) conn.on('ready', changed);
    cmd.on('+node', (conn: Redis) => conn.on('ready', changed));
    cmd.on('ready', changed);
    cmd.on('refresh', changed);
    // A connection that ended (refused, reset) while commands wait for its master: that master is unreachable now;
    // they are refused at once rather than at the end of their wait.
    cmd.on('-node', (conn: Redis) => this.unreachable(`${conn.options.host}:${conn.options.port}`));
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

  /** The node stops: waiting calls are refused, not sent (no timer keeps the process). */
  close(): void {
    this.refuseWhere(() => true);
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
    const { cmd } = this;
    if (this.waiters.length === 0 || !isCluster(cmd)) return;
    this.refuseWhere((w) => cmd.slots[w.slot]?.[0] === address);
  }

  /** Refuses (not sent) the waiting commands `which` picks; the others keep their order. */
  private refuseWhere(which: (w: Reach['waiters'][number]) => boolean): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (which(w)) {
        clearTimeout(w.timer);
        w.done(false);
      } else this.waiters.push(w);
    }
  }

  /** Opens the connection to `key`'s master, or, when ioredis has none, refreshes the slot table (once a second). */
  private reachFor(key: string): void {
    const { cmd } = this;
    if (!isCluster(cmd) || cmd.status !== 'ready') return;
    const conn = masterOf(cmd, key);
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
 * queue). On a Redis Cluster: the connection of the master that serves the key's slot, as the command connection's
 * slot table says.
 */
export function readyFor(cmd: Redis | Cluster, key: string): boolean {
  if (cmd.status !== 'ready') return false;
  if (!isCluster(cmd)) return true;
  return masterOf(cmd, key)?.status === 'ready';
}

/** ioredis's connection to the master that serves `key`'s slot, as the slot table says (none: it has not made one). */
function masterOf(cmd: Cluster, key: string): Redis | undefined {
  const owner = cmd.slots[keySlot(key)]?.[0];
  if (owner === undefined) return undefined;
  return cmd.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner);
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

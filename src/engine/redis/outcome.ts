// Whether a failed Redis command may have run: what a publish's failure is answered (docs/protocol.md, error codes).
// `unavailable` promises nothing happened, so it is only said of a command that surely never reached Redis; a
// command that was written on a ready connection and then timed out or lost its connection may have run
// (`outcome_unknown`: a retry with the same idempotency key publishes it once).
import type { Cluster, Redis } from 'ioredis';

/** Errors of a command that may have been written and run: a timeout, or its connection broke while it was out. */
const MAYBE_SENT = /Command timed out|Connection is closed|ECONNRESET|EPIPE|ETIMEDOUT|max retries per request/i;

/** How a command went out: on a ready connection, or into an offline queue (and whether that connection came up since). */
export interface Sent {
  ready: boolean;
  /** After a failure: whether the connection it waited for came up since (then it was written). */
  cameUp(): boolean;
}

/**
 * True when `err` may be the failure of a command that ran. One written on a ready connection that timed out or lost
 * its connection may have. One that was not (on a Redis Cluster: it waited in the offline queue of its master's
 * connection, which ioredis opens lazily) went out when that connection came up: then the same holds; if it never
 * came up (or ioredis gave up on the queue: max retries) it was never written. `sent` false: not known to have
 * stayed unwritten, so it may have run.
 */
export function maybeRan(err: unknown, sent: boolean | Sent): boolean {
  const message = String((err as Error)?.message ?? err);
  if (!MAYBE_SENT.test(message)) return false;
  const ready = typeof sent === 'boolean' ? sent : sent.ready;
  if (ready) return true;
  if (/max retries per request/i.test(message)) return false;
  return typeof sent === 'boolean' ? true : sent.cameUp();
}

/** 'ready' events seen per connection (counted from the first time a command waited for it). */
const readies = new WeakMap<Redis, number>();

function watched(node: Redis): number {
  if (!readies.has(node)) {
    readies.set(node, 0);
    node.on('ready', () => readies.set(node, (readies.get(node) ?? 0) + 1));
  }
  return readies.get(node)!;
}

/** How a command on `key` goes out now (`readyFor`), and the means to tell later whether a queued one went out. */
export function sentOn(cmd: Redis | Cluster, key: string): Sent {
  if (readyFor(cmd, key)) return { ready: true, cameUp: () => true };
  if (!('slots' in cmd)) return { ready: false, cameUp: () => true }; // one Redis: no offline queue (rejected at once)
  const owner = cmd.slots[keySlot(key)]?.[0];
  const node = owner === undefined ? undefined : cmd.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner);
  if (!node) return { ready: false, cameUp: () => true }; // a connection ioredis has yet to make: not known
  const before = watched(node);
  return { ready: false, cameUp: () => watched(node) !== before };
}

/**
 * Whether a command on `key` goes out at once on a ready connection (rather than into a node connection's offline
 * queue, from which it is written when the connection comes up: maybeRan). On a Redis Cluster: the connection of the
 * master that serves the key's slot, as the command connection's slot table says.
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

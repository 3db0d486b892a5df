// Whether a failed Redis command may have run: what a publish's failure is answered (docs/protocol.md, error codes).
// `unavailable` promises nothing happened, so it is only said of a command that surely never reached Redis; a
// command that was written on a ready connection and then timed out or lost its connection may have run
// (`outcome_unknown`: a retry with the same idempotency key publishes it once).
import type { Cluster, Redis } from 'ioredis';

/** Errors of a command that may have been written and run: a timeout, or its connection broke while it was out. */
const MAYBE_SENT = /Command timed out|Connection is closed|ECONNRESET|EPIPE|ETIMEDOUT|max retries per request/i;

/** True when `err` may be the failure of a command that ran; `sentReady` tells whether it went out on a ready connection. */
export function maybeRan(err: unknown, sentReady: boolean): boolean {
  return sentReady && MAYBE_SENT.test(String((err as Error)?.message ?? err));
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

// The process's open-file limit: every connection is a file descriptor, so --max-connections above it fails
// with EMFILE (accept stops) long before the broker's own limit refuses anything.
import { readFileSync } from 'node:fs';

/** Sockets, files and pipes the broker needs besides its connections. */
export const FD_HEADROOM = 64;

/** The soft "Max open files" limit from /proc/self/limits text; undefined when absent or unlimited. */
export function openFilesSoftLimit(limits: string): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits);
  return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
}

/** The warning to log when the limit cannot hold `maxConnections` plus headroom; undefined when it can or is unknown. */
export function openFilesWarning(maxConnections: number, softLimit: number | undefined): string | undefined {
  if (softLimit === undefined || softLimit >= maxConnections + FD_HEADROOM) return undefined;
  return (
    `the process may open ${softLimit} files (ulimit -n) but --max-connections is ${maxConnections}: ` +
    `sockets past ~${Math.max(0, softLimit - FD_HEADROOM)} fail with EMFILE; raise ulimit -n to at least ${maxConnections + FD_HEADROOM} or lower --max-connections`
  );
}

/** Reads this process's limits; undefined where /proc is not there (macOS, Windows) or unreadable. */
export function readOpenFilesSoftLimit(): number | undefined {
  try {
    return openFilesSoftLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined;
  }
}

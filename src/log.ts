// Logger: pino, one JSON line per lifecycle event; pretty when stdout is a terminal.
import { pino, type Logger } from 'pino';

export type { Logger };

/** `sync`: each line is written before the call returns (a process that exits right after logging loses nothing, reorders nothing). */
export function createLogger(level: string, pretty = process.stdout.isTTY === true, sync = false): Logger {
  if (pretty && level !== 'silent') {
    return pino({ level, base: { pid: process.pid } }, pino.transport({ target: 'pino-pretty', options: { colorize: true } }));
  }
  return sync ? pino({ level }, pino.destination({ dest: 1, sync: true })) : pino({ level });
}

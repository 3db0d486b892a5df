// Logger: pino, one JSON line per lifecycle event; pretty when stdout is a terminal.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, pretty = process.stdout.isTTY === true): Logger {
  if (pretty && level !== 'silent') {
    return pino({ level, base: { pid: process.pid } }, pino.transport({ target: 'pino-pretty', options: { colorize: true } }));
  }
  return pino({ level });
}

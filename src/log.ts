// Logger: pino, one JSON line per lifecycle event; pretty when stdout is a terminal.
import { pino, type Logger } from 'pino';

export type { Logger };

type Destination = ReturnType<typeof pino.destination>;

/** Each logger's own stdout writer, for endLog. */
const destinations = new WeakMap<Logger, Destination>();

/** `sync`: each line is written before the call returns (a process that exits right after logging loses nothing, reorders nothing). */
export function createLogger(level: string, pretty = process.stdout.isTTY === true, sync = false): Logger {
  if (pretty && level !== 'silent') {
    return pino({ level, base: { pid: process.pid } }, pino.transport({ target: 'pino-pretty', options: { colorize: true } }));
  }
  const destination = pino.destination({ dest: 1, sync });
  const log = pino({ level }, destination);
  destinations.set(log, destination);
  return log;
}

/**
 * Resolves when every line `log` (made by createLogger) has written so far has reached stdout, at most `timeoutMs`
 * later; call it before process.exit. An asynchronous write waiting for room in a full pipe (a reader slower than the
 * broker) would otherwise be overtaken by the lines that pino's exit handler writes at once: the log read out of order.
 */
export function endLog(log: Logger, timeoutMs = 2000): Promise<void> {
  const destination = destinations.get(log);
  if (!destination) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    destination.once('close', done);
    try {
      destination.end();
    } catch {
      done(); // already ended or destroyed: nothing left to write
    }
  });
}

type FaultLevel = 'debug' | 'info' | 'warn';

/**
 * Lines about clients' faults (refused upgrades, protocol violations, floods, aborted uploads): never an error with
 * a stack, and never a line per event, whatever a client sends. The first of each kind (its message) in an interval
 * is written at once; more of that kind are counted and written as one line when the interval ends.
 */
export class ClientFaults {
  private kinds = new Map<string, { level: FaultLevel; fields: Record<string, unknown>; repeated: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    readonly intervalMs = 1000,
  ) {}

  note(level: FaultLevel, fields: Record<string, unknown>, msg: string): void {
    if (!this.log.isLevelEnabled(level)) return;
    const kind = this.kinds.get(msg);
    if (kind) {
      kind.repeated++;
      kind.fields = fields; // the latest, as an example
      return;
    }
    this.log[level](fields, msg);
    this.kinds.set(msg, { level, fields, repeated: 0 });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** One line per kind that repeated; a kind still repeating stays counted, so a flood is one line an interval. */
  private flush(): void {
    this.timer = undefined;
    for (const [msg, kind] of this.kinds) {
      if (kind.repeated === 0) {
        this.kinds.delete(msg);
        continue;
      }
      this.log[kind.level]({ ...kind.fields, repeated: kind.repeated, intervalMs: this.intervalMs }, `${msg} (${kind.repeated} more in the last ${this.intervalMs / 1000} s)`);
      kind.repeated = 0;
    }
    if (this.kinds.size > 0) this.schedule();
  }
}

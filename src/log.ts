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

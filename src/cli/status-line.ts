// StatusLine: the one line an interactive `sub` or `chat` shows while it is not connected: why, and a countdown to
// the next attempt, rewritten in place every second instead of a new line per retry. Cleared once connected.
import type { LastClose } from '@switchboard/client';

export interface StatusTarget {
  write(text: string): void;
}

export class StatusLine {
  private timer: ReturnType<typeof setInterval> | undefined;
  private shown = false;
  private text = '';

  constructor(
    private readonly out: StatusTarget,
    private readonly prefix: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Offline since `lastClose`; the next attempt in `inMs`. */
  offline(lastClose: LastClose | undefined, inMs: number): void {
    const at = this.now() + inMs;
    const why = lastClose ? ` (${closeText(lastClose)})` : '';
    const draw = () => this.draw(`${this.prefix}offline${why} · retrying in ${Math.max(0, Math.ceil((at - this.now()) / 1000))}s`);
    this.stopTimer();
    draw();
    this.timer = setInterval(draw, 1000);
    this.timer.unref?.();
  }

  connecting(): void {
    if (!this.shown) return;
    this.stopTimer();
    this.draw(`${this.prefix}connecting…`);
  }

  /** Removes the line (connected, or exiting). */
  clear(): void {
    this.stopTimer();
    if (!this.shown) return;
    this.out.write('\r\x1b[2K');
    this.shown = false;
  }

  get visible(): boolean {
    return this.shown;
  }

  /** Draws the line again (after something printed over it). */
  redraw(): void {
    if (this.shown) this.draw(this.text);
  }

  private draw(text: string): void {
    this.text = text;
    this.out.write(`\r\x1b[2K${text}`);
    this.shown = true;
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** `1006 connect ECONNREFUSED …`, `HTTP 401 Unexpected server response: 401`: a close as a person reads it. */
export function closeText(c: LastClose): string {
  return `${c.status !== undefined ? `HTTP ${c.status}` : c.code}${c.reason ? ` ${c.reason}` : ''}`;
}

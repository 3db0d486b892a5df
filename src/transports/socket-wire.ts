// SocketWire: the part of a Wire that is the same for every transport on a plain net.Socket (TCP lines, MQTT):
// writes that report backpressure, the drain wait, the bytes Node still holds, a bounded last write. No server ping on
// a byte stream.
import type { Socket } from 'node:net';

export abstract class SocketWire {
  constructor(
    protected readonly socket: Socket,
    /** How long a last write may take to flush to a peer that does not read before the socket is cut. */
    private readonly closeTimeoutMs = 5000,
  ) {}

  /** Writes `last`, then ends the stream once everything queued is flushed; cut after closeTimeoutMs if it is not by then. */
  protected endWith(last: Buffer | string): void {
    if (this.socket.destroyed || !this.socket.writable) return void this.socket.destroy();
    this.socket.end(last, () => this.socket.destroy());
    cutUnlessFlushed(this.socket, this.closeTimeoutMs);
  }

  write(chunk: Buffer): boolean {
    if (this.socket.destroyed || !this.socket.writable || chunk.length === 0) return true;
    return this.socket.write(chunk);
  }

  onDrain(listener: () => void): void {
    this.socket.once('drain', listener);
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  ping(): void {}
}

/**
 * Destroys `stream` (a socket, an HTTP response) that was ended unless it is flushed, or closed, within `ms`. Bounded
 * here, not only by the connection actor: after a crash (1011) there is no actor left to cut a peer that does not
 * read, and the socket would hold its slot for ever.
 */
export function cutUnlessFlushed(stream: { destroy(): void; once(event: 'finish' | 'close', listener: () => void): unknown }, ms: number): void {
  const cut = setTimeout(() => stream.destroy(), ms);
  cut.unref();
  const done = () => clearTimeout(cut);
  stream.once('finish', done);
  stream.once('close', done);
}

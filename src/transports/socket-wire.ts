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

  /**
   * Writes `last`, then ends the stream once everything queued is flushed; cut after closeTimeoutMs if it is not by
   * then. Bounded here, not only by the connection actor: after a crash (1011) there is no actor left to cut a peer
   * that does not read, and the socket would hold its slot for ever.
   */
  protected endWith(last: Buffer | string): void {
    if (this.socket.destroyed || !this.socket.writable) return void this.socket.destroy();
    this.socket.end(last, () => this.socket.destroy());
    const cut = setTimeout(() => this.socket.destroy(), this.closeTimeoutMs);
    cut.unref();
    this.socket.once('close', () => clearTimeout(cut));
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

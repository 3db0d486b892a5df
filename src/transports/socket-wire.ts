// SocketWire: the part of a Wire that is the same for every transport on a plain net.Socket (TCP lines, MQTT):
// writes that report backpressure, the drain wait, the bytes Node still holds. No server ping on a byte stream.
import type { Socket } from 'node:net';

export abstract class SocketWire {
  constructor(protected readonly socket: Socket) {}

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

// FrameReader: the reader role. Inbound text → validated frame → one event for the connection machine.
// Bad input gets its protocol error here and the connection stays open; nothing reaches the machine.
import { decodeClientFrame, errorFrame, validateClientFrame, type ClientFrame } from '../protocol/frames.js';
import { ProtocolError } from '../protocol/errors.js';
import type { BrokerStats } from '../core/stats.js';
import type { Link } from './link.js';

export class FrameReader {
  constructor(
    private readonly link: Link,
    private readonly stats: BrokerStats,
  ) {}

  /** One inbound text frame (or JSON line) of `bytes` bytes. */
  text(text: string, bytes: number): void {
    this.accept(decodeClientFrame(text), bytes);
  }

  /** A frame the transport built from its own syntax (TCP plain-text commands): validated and handled like any other. */
  parsed(value: unknown, bytes: number): void {
    this.accept(validateClientFrame(value), bytes);
  }

  private accept(frame: ClientFrame | ProtocolError, bytes: number): void {
    this.count(bytes);
    if (frame instanceof ProtocolError) return this.reject(frame);
    const actor = this.link.actor!;
    if (frame.op === 'quit') actor.send({ type: 'QUIT' });
    else actor.send({ type: 'FRAME', frame });
  }

  /** Inbound traffic that is not a text frame (binary WebSocket frames). */
  binary(bytes: number): void {
    this.count(bytes);
    this.reject(new ProtocolError('bad_frame', 'binary frames are not supported; send JSON text frames'));
  }

  reject(err: ProtocolError): void {
    this.stats.countError(err.code);
    this.link.send(errorFrame(err));
  }

  private count(bytes: number): void {
    this.link.lastActivity = Date.now();
    this.link.framesIn++;
    this.link.bytesIn += bytes;
  }
}

// A raw-socket flooder: pre-built masked frames written as fast as the broker reads them (suite and bench).
import WebSocket from 'ws';
import { keepSocket, socketOf } from './ws-socket.js';

/** `count` copies of one client→server text frame, masked with a zero key (valid, and free to build). */
export function maskedFrames(text: string, count: number): Buffer {
  const payload = Buffer.from(text);
  if (payload.length >= 126) throw new Error('keep flood frames short');
  const one = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
  return Buffer.concat(Array.from({ length: count }, () => one));
}

export interface Flooder {
  ws: WebSocket;
  stop: () => void;
  /** The close code the broker sent. */
  closed: Promise<number>;
  /** Error codes received, in order. */
  errors: () => string[];
}

/** Publishes to `flood` through the raw socket, until the socket closes or stop() is called. */
export async function flood(url: string): Promise<Flooder> {
  const ws = keepSocket(new WebSocket(url));
  const errors: string[] = [];
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString()) as { op?: string; code?: string };
    if (f.op === 'error') errors.push(String(f.code));
  });
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  await new Promise((r) => ws.once('open', r));
  // Pre-framed bytes written to the socket itself: the only way to flood faster than ws.send.
  const socket = socketOf(ws);
  const chunk = maskedFrames(JSON.stringify({ op: 'pub', topic: 'flood', data: 'x'.repeat(60) }), 200);
  let running = true;
  const pump = () => {
    while (running && !socket.destroyed && socket.writable) {
      if (!socket.write(chunk)) return void socket.once('drain', pump);
    }
  };
  setImmediate(pump);
  return { ws, stop: () => (running = false), closed, errors: () => errors };
}

/** Readers on the flood topic, so an unlimited flood costs real fan-out work. */
export async function floodAudience(url: string, n: number): Promise<WebSocket[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const ws = new WebSocket(`${url}/flood`);
      ws.on('message', () => {});
      await new Promise((r) => ws.once('open', r));
      return ws;
    }),
  );
}

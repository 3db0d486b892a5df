// Upgrade probes for security tests: does a WebSocket handshake succeed, or which HTTP status refuses it?
import WebSocket from 'ws';

export type Outcome = { status: 101; ws: WebSocket } | { status: number; body: string };

export function tryUpgrade(url: string, options: WebSocket.ClientOptions = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', (err) => reject(err));
  });
}

export async function statusOf(url: string, options: WebSocket.ClientOptions = {}): Promise<number> {
  const o = await tryUpgrade(url, options);
  if ('ws' in o) o.ws.terminate();
  return o.status;
}

export async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** One raw HTTP exchange: writes `request` as bytes, collects what comes back until the server closes or `untilMs`. */
export async function rawHttp(
  port: number,
  request: string | Buffer,
  untilMs = 3000,
  /** `head`: done once the status line and headers arrived (an accepted upgrade stays open; no need to wait it out). */
  until: 'close' | 'head' = 'close',
): Promise<{ status: number | null; text: string; closed: boolean; ms: number }> {
  const { connect } = await import('node:net');
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let text = '';
  let headArrived: () => void = () => {};
  const head = new Promise<boolean>((r) => (headArrived = () => r(false)));
  socket.on('data', (d: Buffer) => {
    text += d.toString('latin1');
    if (until === 'head' && text.includes('\r\n\r\n')) headArrived();
  });
  const closed = new Promise<boolean>((r) => socket.once('close', () => r(true)));
  await new Promise((r) => socket.once('connect', r));
  const start = Date.now();
  socket.write(typeof request === 'string' ? Buffer.from(request, 'latin1') : request);
  let timer: NodeJS.Timeout | undefined;
  const didClose = await Promise.race([closed, head, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), untilMs)))]);
  clearTimeout(timer);
  const ms = Date.now() - start;
  socket.destroy();
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  return { status: m ? Number(m[1]) : null, text, closed: didClose, ms };
}

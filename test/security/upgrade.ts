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

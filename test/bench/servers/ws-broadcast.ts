// The baseline every Node user writes first: a `ws` server that sends each message from the publisher
// (path /pub) to every other client with ws.send. Greets each client so the bench knows the socket is up.
// Usage: node --import tsx ws-broadcast.ts <port> [heartbeatMs]
import { WebSocketServer, WebSocket } from 'ws';

const port = Number(process.argv[2] ?? 8090);
const heartbeatMs = Number(process.argv[3] ?? 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
const subscribers = new Set<WebSocket>();
const alive = new WeakSet<WebSocket>();

wss.on('connection', (ws, req) => {
  ws.send('{"op":"hello"}');
  ws.on('error', () => ws.terminate());
  if (req.url === '/pub') {
    ws.on('message', (data, isBinary) => {
      for (const s of subscribers) s.send(data, { binary: isBinary });
    });
    return;
  }
  subscribers.add(ws);
  alive.add(ws);
  ws.on('pong', () => alive.add(ws));
  ws.on('close', () => subscribers.delete(ws));
});

// The usual ws heartbeat: ping everyone, terminate whoever did not answer the previous ping.
if (heartbeatMs > 0) {
  setInterval(() => {
    for (const s of subscribers) {
      if (!alive.has(s)) {
        s.terminate();
        continue;
      }
      alive.delete(s);
      s.ping();
    }
  }, heartbeatMs);
}
wss.on('listening', () => process.send?.({ type: 'listening' }));

// Socket.IO 4 peer: subscribers join room "bench"; the publisher's "pub" events are broadcast to the room.
// WebSocket transport only, no compression, so it is compared on the same wire as the others.
// With a Redis URL it is a node of a cluster through @socket.io/redis-adapter (the anchor of the cluster bench):
// every broadcast goes through Redis pub/sub to every node, as Switchboard's `--redis` does.
// Ingest: "in" events (publishers of the ingest workload) are broadcast to room "in".
// Usage: node --import tsx socketio.ts <port> [heartbeatMs] [redis://host:port]
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2] ?? 8091);
const redisUrl = process.argv[4];
const http = createServer();
const io = new Server(http, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });

if (redisUrl) {
  const { Redis } = await import('ioredis');
  const { createAdapter } = await import('@socket.io/redis-adapter');
  const pub = new Redis(redisUrl);
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on('error', (err) => console.error(`socket.io redis: ${err.message}`));
  io.adapter(createAdapter(pub, sub));
}

io.on('connection', (socket) => {
  const role = socket.handshake.query.role;
  if (role === 'pub') {
    socket.on('pub', (payload: unknown) => io.to('bench').emit('msg', payload));
    socket.on('in', (payload: unknown) => io.to('in').emit('msg', payload));
  } else {
    void socket.join(role === 'in' ? 'in' : 'bench');
  }
});
http.listen(port, '127.0.0.1', () => process.send?.({ type: 'listening' }));

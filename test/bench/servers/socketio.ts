// Socket.IO 4 peer: subscribers join room "bench"; the publisher's "pub" events are broadcast to the room.
// WebSocket transport only, no compression, so it is compared on the same wire as the others.
// Usage: node --import tsx socketio.ts <port>
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2] ?? 8091);
const http = createServer();
const io = new Server(http, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });

io.on('connection', (socket) => {
  if (socket.handshake.query.role === 'pub') {
    socket.on('pub', (payload: unknown) => io.to('bench').emit('msg', payload));
  } else {
    void socket.join('bench');
  }
});
http.listen(port, '127.0.0.1', () => process.send?.({ type: 'listening' }));

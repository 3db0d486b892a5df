// The part of a WebSocket the client uses: the browser's, Node 22's and the `ws` package's all fit, and so does the
// SSE fallback (sse-socket.ts), so the client drives every transport through one face. Types only.

/** An event handler a WebSocket calls with `E` or a richer event (checked like a method, so every platform's fits). */
export type SocketHandler<E> = { handle(event: E): void }['handle'];

/** The part of a WebSocket the client uses: the browser's, Node 22's and the `ws` package's all fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: SocketHandler<unknown> | null;
  onmessage: SocketHandler<{ data: unknown }> | null;
  onclose: SocketHandler<{ code: number; reason: string }> | null;
  onerror: SocketHandler<unknown> | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

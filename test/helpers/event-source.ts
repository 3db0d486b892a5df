// NodeEventSource: just enough of the browser's EventSource over node:http for the client library's SSE fallback
// in Node tests (Node 20 has none): named events, `onmessage`, `onerror`, `close()`. It never reconnects by itself
// (the client library closes it on the first error anyway).
import { request, type ClientRequest } from 'node:http';

type Listener = (event: { data?: unknown }) => void;

export class NodeEventSource {
  readyState = 0;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  private readonly listeners = new Map<string, Listener[]>();
  private readonly req: ClientRequest;

  constructor(url: string) {
    this.req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return this.fail();
      }
      this.readyState = 1;
      res.setEncoding('utf8');
      let buffer = '';
      let type = '';
      let data: string[] = [];
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl).replace(/\r$/, '');
          buffer = buffer.slice(nl + 1);
          if (line === '') {
            if (data.length > 0) this.dispatch(type || 'message', data.join('\n'));
            type = '';
            data = [];
          } else if (line.startsWith('event:')) type = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
      });
      res.on('close', () => this.fail());
      res.on('error', () => this.fail());
    });
    this.req.on('error', () => this.fail());
    this.req.end();
  }

  addEventListener(type: string, listener: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.readyState = 2;
    this.req.destroy();
  }

  private dispatch(type: string, data: string): void {
    if (this.readyState === 2) return;
    if (type === 'message') this.onmessage?.({ data });
    for (const l of this.listeners.get(type) ?? []) l({ data });
  }

  private fail(): void {
    if (this.readyState === 2) return;
    this.readyState = 2;
    this.onerror?.({});
  }
}

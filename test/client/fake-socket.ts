// FakeSocket: an in-memory WebSocket for unit tests of the client. The test plays the broker: it opens, sends
// frames, reads what the client sent and closes with any code, under fake timers.
import { vi } from 'vitest';
import { SwitchboardClient, type WebSocketLike } from '@switchboard/client';

export class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  static get last(): FakeSocket {
    return FakeSocket.all[FakeSocket.all.length - 1]!;
  }
  readyState = 0;
  readonly sent: Record<string, any>[] = [];
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  closedByClient: number | undefined;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(data));
  }

  close(code = 1000): void {
    this.closedByClient = code;
    this.readyState = 3;
  }

  // ---- the broker's side ----

  /** Opens and says hello (`protocol`: the broker's, 2 unless a test plays an older one). */
  open(helloClient: { id: string; name?: string } = { id: 'c1' }, protocol = 2): void {
    this.readyState = 1;
    this.onopen?.({});
    this.frame({
      op: 'hello',
      client: { id: helloClient.id, name: helloClient.name ?? `guest-${helloClient.id}`, transport: 'ws', addr: '127.0.0.1:1' },
      heartbeatMs: 25000,
      idleMs: 60000,
      idleClose: 'tcp',
      server: { name: 'switchboard', version: 'test', protocol },
    });
  }

  frame(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  drop(code = 1006, reason = '', errorMessage?: string): void {
    this.readyState = 3;
    if (errorMessage) this.onerror?.({ message: errorMessage });
    this.onclose?.({ code, reason });
  }

  /** The last frame the client sent with this op. */
  lastSent(op: string): Record<string, any> {
    const f = [...this.sent].reverse().find((s) => s.op === op);
    if (!f) throw new Error(`client sent no ${op}; sent: ${JSON.stringify(this.sent)}`);
    return f;
  }

  /** Answers the client's last `op` request with an ack carrying `fields`. */
  ack(op: string, fields: Record<string, unknown> = {}): void {
    this.frame({ op: 'ack', id: this.lastSent(op).id, ...fields });
  }
}

export function resetFakeSockets(): void {
  FakeSocket.all = [];
}

/**
 * A client on a FakeSocket that said hello (`c1`, `me`; fake timers on): `requestTimeoutMs` 1000, `options` over
 * those. The test then plays the broker through FakeSocket.last.
 */
export async function onlineClient(options: Partial<ConstructorParameters<typeof SwitchboardClient>[0]> = {}): Promise<SwitchboardClient> {
  const client = new SwitchboardClient({ url: 'ws://broker/ws', WebSocket: FakeSocket, random: () => 0, requestTimeoutMs: 1000, ...options });
  await vi.advanceTimersByTimeAsync(0);
  FakeSocket.last.open({ id: 'c1', name: 'me' });
  return client;
}

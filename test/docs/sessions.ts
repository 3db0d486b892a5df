// Documented sessions replayed over real sockets: a WebSocket conversation (`>` typed, `<` received, as wscat shows
// it) and a TCP line session (as nc shows it: what the broker says and what was typed, interleaved). Typed lines are
// told apart from output without guessing: after each line typed the session sends a ping and reads up to its pong,
// so everything the line caused has arrived; a documented line that has not arrived by then was typed (or is caused
// by a hook: another client acting at that point of the story).
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { Bindings, expectLines } from './transcript.js';

/** A WebSocket as wscat drives it: frames in order, the close with its code and reason. */
export class WsConversation {
  private readonly frames: string[] = [];
  private waiter: (() => void) | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(String(data));
      this.waiter?.();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => (resolve({ code, reason: reason.toString() }), this.waiter?.())));
  }

  static async open(url: string): Promise<WsConversation> {
    const ws = new WebSocket(url);
    const c = new WsConversation(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return c;
  }

  send(text: string): void {
    this.ws.send(text);
  }

  async next(what: string, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`the connection closed before ${what}`);
      if (Date.now() > deadline) throw new Error(`no frame within ${timeoutMs} ms for ${what}`);
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.frames.shift()!;
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Plays `> frame` and checks `< frame` lines (and wscat's own `Disconnected (code: …)` line) on `conv`. */
export async function replayWs(lines: string[], conv: WsConversation, b: Bindings, hooks: Hooks = {}): Promise<void> {
  for (const line of lines) {
    await runHook(hooks, line);
    if (line.startsWith('> ')) conv.send(b.put(line.slice(2)));
    else if (line.startsWith('< ')) expectLines([line.slice(2)], [await conv.next(line)], b, 'a frame');
    else if (line.startsWith('Disconnected ')) {
      const { code, reason } = await conv.closed;
      expectLines([line], [`Disconnected (code: ${code}, reason: "${reason}")`], b, 'the close');
    } else if (line !== 'Connected (press CTRL+C to quit)') throw new Error(`a line wscat would not show: ${line}`);
  }
}

/** Actions of other clients at points of a documented session, keyed by a piece of the line they cause. */
export type Hooks = Record<string, () => Promise<void>>;

async function runHook(hooks: Hooks, line: string): Promise<boolean> {
  const key = Object.keys(hooks).find((k) => line.includes(k));
  if (key === undefined) return false;
  const hook = hooks[key]!;
  delete hooks[key];
  await hook();
  return true;
}

/** A TCP line connection that can wait until the broker has answered everything sent so far. */
export class LineConversation {
  private buffer = '';
  private readonly lines: string[] = [];
  private ended = false;
  private barrierSeq = 0;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let i = this.buffer.indexOf('\n'); i >= 0; i = this.buffer.indexOf('\n')) {
        this.lines.push(this.buffer.slice(0, i).replace(/\r$/, ''));
        this.buffer = this.buffer.slice(i + 1);
      }
    });
    socket.on('close', () => (this.ended = true));
    socket.on('error', () => (this.ended = true));
  }

  static async open(port: number): Promise<LineConversation> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new LineConversation(socket);
  }

  type(line: string): void {
    this.socket.write(line + '\n');
  }

  /** Everything the broker sent in answer to what was typed so far (a ping's pong marks the end; it is left out). */
  async settle(timeoutMs = 5000): Promise<string[]> {
    const id = `docs-barrier-${++this.barrierSeq}`;
    if (!this.ended) this.socket.write(`{"op":"ping","id":"${id}"}\n`);
    const pong = `{"op":"pong","id":"${id}"}`;
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && !this.lines.includes(pong)) {
      if (Date.now() > deadline) throw new Error(`no pong within ${timeoutMs} ms; got: ${this.lines.join(' | ')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const at = this.lines.indexOf(pong);
    return this.lines.splice(0, at < 0 ? this.lines.length : at + 1).filter((l) => l !== pong);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Replays an nc session: documented output must arrive in order; a documented line not (yet) received was typed. */
export async function replayLines(lines: string[], conv: LineConversation, b: Bindings, hooks: Hooks = {}): Promise<void> {
  let received = await conv.settle();
  const take = (expected: string) => expectLines([expected], [received.shift() ?? '(nothing)'], b, 'a line');
  for (const line of lines) {
    if (received.length > 0) {
      take(line);
      continue;
    }
    if (await runHook(hooks, line)) {
      received = await conv.settle();
      take(line);
      continue;
    }
    conv.type(b.put(line));
    received = await conv.settle();
  }
  expect0(received);
}

function expect0(rest: string[]): void {
  if (rest.length > 0) throw new Error(`the broker said more than the docs show: ${rest.join(' | ')}`);
}

export { Bindings };

// LinesProbe: a checker connection over the TCP line protocol (JSON lines), reached through the broker's HTTP port
// (`GET /lines?room=…`, Upgrade: switchboard-lines) so that it joins a room of the checker's own, not the broker's --room.
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Expected } from '../protocol/model.js';
import { LineSplitter } from '../transports/tcp/lines.js';
import { Probe, ProbeError } from './probe.js';

/**
 * Opens the line protocol beside the WebSocket endpoint `url`, in `room`; it speaks JSON lines, and its first frame
 * is a hello built from the greeting line (the line protocol greets in text).
 */
export function connectLines(url: string, room: string, timeoutMs: number, name?: string): Promise<Probe> {
  return TcpProbe.open(linesUrl(url, room, name), timeoutMs, room);
}

const GREETING = /^I am here: .*? You are (.*?)(?: from (\S+))? \(id (c\d+)\)\./;

/** TCP: lines starting with `{` are frames; other lines (greeting, chat room traffic, `bye`) are kept aside. */
class TcpProbe extends Probe {
  /** Plain-text lines: the greeting, the room's chat lines, and `bye` before the server ends the stream. */
  readonly lines: string[] = [];
  private ended = false;

  private constructor(
    private readonly socket: Socket,
    private readonly room: string,
  ) {
    super();
    const splitter = new LineSplitter(16 * 1024 * 1024);
    socket.on('data', (chunk: Buffer) => {
      for (const e of splitter.push(chunk)) {
        if (e.kind !== 'line') continue;
        if (e.text.startsWith('{')) this.receive(e.text);
        else this.lines.push(e.text);
      }
    });
    socket.on('error', () => {}); // the close event below reports the end either way
    socket.on('close', () => {
      this.ended = true;
      // TCP has no close codes: the server's last line says `bye` (1000) or `bye: reason (code)`.
      const last = this.lines.at(-1) ?? '';
      const code = last === 'bye' ? 1000 : Number(/\((\d+)\)$/.exec(last)?.[1] ?? 1006);
      this.settleClosed(code);
    });
  }

  static async open(url: URL, timeoutMs: number, room: string): Promise<Probe> {
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port || (url.protocol === 'wss:' ? 443 : 80));
    const socket: Socket = url.protocol === 'wss:' ? tlsConnect({ host, port, servername: host }) : tcpConnect({ host, port, noDelay: true });
    socket.on('error', () => {}); // reported by the upgrade below, or by the close event once it is a probe
    let timer: NodeJS.Timeout | undefined;
    const early = await Promise.race([
      upgradeToLines(socket, url),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new ProbeError(`no line protocol at ${url} within ${timeoutMs} ms`)), timeoutMs))),
    ]).finally(() => clearTimeout(timer)).catch((err: unknown) => {
      socket.destroy();
      throw err;
    });
    const probe = new TcpProbe(socket, room);
    if (early.length > 0) socket.unshift(early);
    socket.resume();
    // TCP greets in text: `… You are <name>[ from <addr>] (id c<n>).` (the name is the address by default).
    // Protocol 2's `who` shows no addresses to non-admins, so the greeting is where this connection learns its own.
    const deadline = Date.now() + timeoutMs;
    let greeting: RegExpExecArray | null = null;
    while (!(greeting = probe.lines.map((l) => GREETING.exec(l)).find((m) => m !== null) ?? null)) {
      if (Date.now() > deadline || !probe.open) throw new ProbeError(`no TCP greeting naming this connection within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 2));
    }
    const [, name, from, id] = greeting;
    const me = { id: id!, name: name!, addr: from ?? name!, transport: 'tcp' };
    const rest = probe.frames.slice();
    probe.frames.length = 0;
    probe.frames.push({ op: 'hello', client: me, heartbeatMs: 0, idleMs: 0, idleClose: true, server: {} }, ...rest);
    return probe;
  }

  /** The room's traffic comes as text lines, not frames (the probe keeps those aside). */
  override view(expected: Expected[]): Expected[] {
    return expected.filter((f) => f.topic !== this.room);
  }

  get open(): boolean {
    return !this.ended && !this.socket.destroyed;
  }

  send(frame: unknown): void {
    this.socket.write((typeof frame === 'string' ? frame : JSON.stringify(frame)) + '\n');
  }

  drop(): void {
    this.socket.resetAndDestroy();
  }

  close(): void {
    if (!this.socket.destroyed) this.socket.end();
  }
}


/** The `/lines` endpoint beside the WebSocket one at `wsUrl` (same host and port), asking for `room` and `name`. */
function linesUrl(wsUrl: string, room: string, name: string | undefined): URL {
  const url = new URL(wsUrl);
  url.pathname = '/lines';
  url.search = '';
  url.searchParams.set('room', room);
  if (name !== undefined) url.searchParams.set('name', name);
  return url;
}

/** Sends the upgrade request and resolves with the bytes after the `101` response's header, the socket paused. */
function upgradeToLines(socket: Socket, url: URL): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const fail = (err: Error) => reject(new ProbeError(`cannot connect to ${url.host}: ${err.message}`));
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', fail);
      socket.pause();
      const status = got.subarray(0, got.indexOf('\r\n')).toString();
      if (!/^HTTP\/1\.1 101 /.test(status)) return reject(new ProbeError(`${url} answered ${status.replace(/^HTTP\/1\.1 /, 'HTTP ')}: ${got.subarray(end + 4).toString().slice(0, 200)}`));
      resolve(got.subarray(end + 4));
    };
    socket.once('error', fail);
    socket.on('data', onData);
    socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: switchboard-lines\r\nConnection: Upgrade\r\n\r\n`);
  });
}

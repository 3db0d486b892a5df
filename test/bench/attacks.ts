// Attack figures after the hardening fixes (items 2, 4, 5, 6, 7 of the hardening issue; churn, stall, names and
// aborts: round three, issue 19). Not a vitest test: a
// script that starts the broker as `npm start` does (dist/cli.js serve in a child process, default settings
// unless an attack needs a limit raised; each attack says which), runs one attack at a time from this machine for
// a bounded time, and meanwhile measures a victim: a WebSocket subscriber of its own topic fed by a paced
// publisher (20 msg/s). The broker's RSS is sampled from /proc/<pid>/status. Attack traffic comes from forked
// workers (this file with --worker), so the victim's process only measures.
//   npm run attacks                         all attacks (about 5 minutes); writes test/bench/results/attacks.json
//   npm run attacks -- --only who,directs   some of them: history, who, since, slow-http, directs, churn, stall, names, aborts
//   npm run attacks -- --only history --history-seconds 60 --out attacks-history-60s.json
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { cpuUs, rssBytes, sleep, startScriptFlags } from './servers.js';
import { wsClientFrame } from './wire.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HOST = '127.0.0.1';
const VICTIM_ADDR = '127.0.0.200';
const PROBE_ADDR = '127.0.0.201';
const MB = 2 ** 20;

type AttackName = 'history' | 'who' | 'since' | 'slow-http' | 'directs' | 'churn' | 'stall' | 'names' | 'aborts';
const ALL: AttackName[] = ['history', 'who', 'since', 'slow-http', 'directs', 'churn', 'stall', 'names', 'aborts'];

const round = (x: number, d = 1): number => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);
function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const addr = (n: number): string => `127.0.0.${n}`;

// ====================================================================== raw WebSocket client (attack side)
interface RawWsOptions {
  path: string;
  localAddress?: string;
  /** Stop reading once the upgrade is answered: a peer that never reads. */
  pauseAfterOpen?: boolean;
  onOpen?: () => void;
  onText?: (payload: Buffer) => void;
  onEnd?: () => void;
}

/** A hand-written WebSocket client: handshake, unmasked server frames, pongs, the close code. */
class RawWs {
  readonly socket: Socket;
  open = false;
  ended = false;
  closeCode: number | undefined;
  refused: string | undefined;
  error: string | undefined;
  private rest: Buffer | null = null;
  private handshaking = true;

  constructor(port: number, private readonly opts: RawWsOptions) {
    this.socket = connect({ host: HOST, port, localAddress: opts.localAddress, noDelay: true });
    this.socket.on('connect', () =>
      this.socket.write(
        `GET ${opts.path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    this.socket.on('data', (chunk) => this.data(chunk));
    this.socket.on('error', (err) => {
      this.error ??= (err as NodeJS.ErrnoException).code ?? err.message;
    });
    this.socket.on('close', () => {
      if (this.ended) return;
      this.ended = true;
      opts.onEnd?.();
    });
  }

  sendText(text: string | Buffer): boolean {
    return this.socket.write(wsClientFrame(1, typeof text === 'string' ? Buffer.from(text) : text));
  }

  private data(chunk: Buffer): void {
    if (this.rest) {
      chunk = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let i = 0;
    if (this.handshaking) {
      const end = chunk.indexOf('\r\n\r\n');
      if (end < 0) {
        this.rest = chunk;
        return;
      }
      const status = chunk.subarray(0, Math.min(end, 40)).toString().split('\r\n')[0]!;
      if (!status.startsWith('HTTP/1.1 101')) {
        this.refused = status;
        this.socket.destroy();
        return;
      }
      this.handshaking = false;
      this.open = true;
      i = end + 4;
      if (this.opts.pauseAfterOpen) this.socket.pause();
      this.opts.onOpen?.();
    }
    const len = chunk.length;
    while (i < len) {
      if (len - i < 2) break;
      let plen = chunk[i + 1]! & 0x7f;
      let h = 2;
      if (plen === 126) {
        if (len - i < 4) break;
        plen = chunk.readUInt16BE(i + 2);
        h = 4;
      } else if (plen === 127) {
        if (len - i < 10) break;
        plen = chunk.readUInt32BE(i + 6);
        h = 10;
      }
      if (len - i - h < plen) break;
      const opcode = chunk[i]! & 0x0f;
      const payload = chunk.subarray(i + h, i + h + plen);
      i += h + plen;
      if (opcode === 9) this.socket.write(wsClientFrame(10, Buffer.from(payload)));
      else if (opcode === 8) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.socket.end();
      } else if (opcode === 1) this.opts.onText?.(payload);
    }
    if (i < len) this.rest = Buffer.from(chunk.subarray(i));
  }
}

/**
 * Writes `frame` as fast as the socket takes it (waiting for drain, never buffering without bound) until `until`.
 * Yields after every batch: while the kernel takes writes at once, write() keeps returning true, and a plain loop
 * would hold the event loop (and every other socket of the process) for the whole attack.
 */
function pump(socket: Socket, frame: () => Buffer, until: number, count: { n: number }): void {
  const go = (): void => {
    for (let k = 0; k < 64; k++) {
      if (Date.now() >= until || socket.destroyed) return;
      count.n++;
      if (!socket.write(frame())) {
        socket.once('drain', go);
        return;
      }
    }
    setImmediate(go);
  };
  go();
}

/** Tally of the error codes, acks and other frames a flooder got back. */
function tallyFrame(tally: Record<string, number>, payload: Buffer): void {
  const head = payload.subarray(0, 160).toString();
  const op = /"op":"(\w+)"/.exec(head)?.[1] ?? '?';
  const code = op === 'error' ? /"code":"(\w+)"/.exec(head)?.[1] : undefined;
  const key = code ? `error ${code}` : op;
  tally[key] = (tally[key] ?? 0) + 1;
}

const closeKey = (ws: RawWs): string => (ws.closeCode !== undefined ? `close ${ws.closeCode}` : ws.refused ? `refused ${ws.refused}` : ws.ended ? `socket ended${ws.error ? ` (${ws.error})` : ''}` : 'open');
function countBy<T>(xs: T[], key: (x: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}

// ====================================================================== workers (attack traffic)
type WorkerJob =
  | { kind: 'history'; port: number; conns: number; ratePerConn: number; size: number; seconds: number }
  | { kind: 'tcp-crowd'; tcpPort: number; count: number; sources: string[] }
  | { kind: 'who-ws'; port: number; conns: number; seconds: number; source: string }
  | { kind: 'who-tcp'; tcpPort: number; conns: number; seconds: number; source: string }
  | { kind: 'fill'; port: number; conns: number; topics: number; ratePerConn: number; source: string; segments?: number }
  | { kind: 'churn'; port: number; filter: string; pairsPerSecond: number; seconds: number; source: string }
  | { kind: 'paced'; port: number; topic: string; ratePerSecond: number; seconds: number; source: string }
  | { kind: 'since-flood'; port: number; seconds: number; form: 'number' | 'map'; pace: 'flood' | 'sequential'; source: string }
  | { kind: 'slow-http'; port: number; count: number; sources: string[]; seconds: number; reopenMs: number }
  | { kind: 'directs'; port: number; conns: number; to: string; size: number; seconds: number; source: string };

function ready(info: object = {}): void {
  process.send!({ type: 'ready', ...info });
}
let stopRequested: () => void = () => undefined;
const stopped = new Promise<void>((r) => (stopRequested = r));

/** 5 connections publishing `size`-byte messages, each to a topic never used before, at a fixed total rate. */
async function historyJob(j: Extract<WorkerJob, { kind: 'history' }>) {
  const data = 'x'.repeat(j.size);
  const tally: Record<string, number> = {};
  const clients = await openAll(j.conns, (i, onOpen) => new RawWs(j.port, { path: '/ws', localAddress: addr(40 + i), onOpen, onText: (p) => tallyFrame(tally, p) }));
  const done = clients.map(() => 0);
  ready();
  let sent = 0;
  let skipped = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = (performance.now() - started) / 1000;
      const due = Math.floor(Math.min(elapsed, j.seconds) * j.ratePerConn);
      clients.forEach((c, i) => {
        for (let k = done[i]!; k < due; k++) {
          if (c.ended) break;
          if (c.socket.writableLength > 16 * MB) skipped++;
          else {
            c.sendText(`{"op":"pub","topic":"hist/${i}/${k}","data":"${data}"}`);
            sent++;
          }
        }
        done[i] = due;
      });
      if (elapsed >= j.seconds) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  await sleep(500);
  const result = { sent, skipped, bytesSent: sent * j.size, replies: tally, closes: countBy(clients, closeKey) };
  for (const c of clients) c.socket.destroy();
  return result;
}

async function openAll(n: number, make: (i: number, onOpen: () => void) => RawWs): Promise<RawWs[]> {
  const out: RawWs[] = [];
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      new Promise<void>((resolve) => {
        const c = make(i, () => resolve());
        c.socket.once('close', () => resolve());
        out.push(c);
      }),
    ),
  );
  return out;
}

/** Idle TCP chat clients: they read and discard, and send a ping every 20 s so the idle timer leaves them. */
async function tcpCrowdJob(j: Extract<WorkerJob, { kind: 'tcp-crowd' }>) {
  const sockets: Socket[] = [];
  let connected = 0;
  let failed = 0;
  let closedLater = 0;
  let next = 0;
  await new Promise<void>((resolve) => {
    const launch = (): void => {
      if (next >= j.count) return;
      const i = next++;
      let settled = false;
      const settle = (ok: boolean): void => {
        if (settled) {
          if (!ok) closedLater++;
          return;
        }
        settled = true;
        if (ok) connected++;
        else failed++;
        if (connected + failed === j.count) resolve();
        else launch();
      };
      const s = connect({ host: HOST, port: j.tcpPort, localAddress: j.sources[i % j.sources.length] });
      s.on('data', () => settle(true)); // the greeting
      s.on('error', () => undefined);
      s.on('close', () => settle(false));
      sockets.push(s);
    };
    for (let k = 0; k < Math.min(200, j.count); k++) launch();
  });
  const ping = setInterval(() => {
    for (const s of sockets) if (!s.destroyed) s.write('{"op":"ping"}\n');
  }, 20_000);
  ready({ connected, failed });
  await stopped;
  clearInterval(ping);
  for (const s of sockets) s.destroy();
  return { connected, failed, closedLater };
}

/** Connections that send `who` (limit 1000) as fast as the socket takes it and never read. */
async function whoWsJob(j: Extract<WorkerJob, { kind: 'who-ws' }>) {
  const clients = await openAll(j.conns, (_, onOpen) => new RawWs(j.port, { path: '/ws', localAddress: j.source, pauseAfterOpen: true, onOpen }));
  ready({ open: clients.filter((c) => c.open).length });
  const frame = wsClientFrame(1, Buffer.from('{"op":"who","limit":1000}'));
  const until = Date.now() + j.seconds * 1000;
  const counts = clients.map(() => ({ n: 0 }));
  const endedAt: number[] = [];
  const t0 = Date.now();
  clients.forEach((c, i) => {
    c.socket.once('close', () => endedAt.push(Date.now() - t0));
    pump(c.socket, () => frame, until, counts[i]!);
  });
  await sleep(j.seconds * 1000 + 200);
  const result = {
    open: clients.filter((c) => c.open).length,
    framesWritten: counts.reduce((a, c) => a + c.n, 0),
    socketsEndedByBroker: endedAt.length,
    endedAfterMs: endedAt.length ? { first: Math.min(...endedAt), last: Math.max(...endedAt) } : null,
  };
  for (const c of clients) c.socket.destroy();
  return result;
}

/** TCP clients that send the plain-text `who` line as fast as the socket takes it and never read. */
async function whoTcpJob(j: Extract<WorkerJob, { kind: 'who-tcp' }>) {
  const sockets = await Promise.all(
    Array.from({ length: j.conns }, () =>
      new Promise<Socket>((resolve) => {
        const s = connect({ host: HOST, port: j.tcpPort, localAddress: j.source });
        s.once('data', () => {
          s.pause();
          resolve(s);
        });
        s.on('error', () => undefined);
        s.once('close', () => resolve(s));
      }),
    ),
  );
  ready({ open: sockets.filter((s) => !s.destroyed).length });
  const line = Buffer.from('who\n');
  const until = Date.now() + j.seconds * 1000;
  const counts = sockets.map(() => ({ n: 0 }));
  const endedAt: number[] = [];
  const t0 = Date.now();
  sockets.forEach((s, i) => {
    s.once('close', () => endedAt.push(Date.now() - t0));
    pump(s, () => line, until, counts[i]!);
  });
  await sleep(j.seconds * 1000 + 200);
  const result = {
    linesWritten: counts.reduce((a, c) => a + c.n, 0),
    socketsEndedByBroker: endedAt.length,
    endedAfterMs: endedAt.length ? { first: Math.min(...endedAt), last: Math.max(...endedAt) } : null,
  };
  for (const s of sockets) s.destroy();
  return result;
}

/** Publishes once to each of `topics` topics (t/<n>), paced under the default inbound rate, then a ping per connection. */
async function fillJob(j: Extract<WorkerJob, { kind: 'fill' }>) {
  const tally: Record<string, number> = {};
  let pongs = 0;
  let allPonged: () => void = () => undefined;
  const allPongs = new Promise<void>((r) => (allPonged = r));
  const clients = await openAll(j.conns, (_, onOpen) =>
    new RawWs(j.port, {
      path: '/ws',
      localAddress: j.source,
      onOpen,
      onText: (p) => {
        tallyFrame(tally, p);
        if (p.includes('"id":"end"') && ++pongs === j.conns) allPonged();
      },
    }),
  );
  const per = Math.ceil(j.topics / j.conns);
  const done = clients.map(() => 0);
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(per, Math.floor(((performance.now() - started) / 1000) * j.ratePerConn));
      clients.forEach((c, ci) => {
        const from = done[ci]!;
        const parts: Buffer[] = [];
        for (let k = from; k < due; k++) {
          const n = ci * per + k;
          const topic = j.segments ? `n${n}/${Array.from({ length: j.segments - 1 }, (_, s) => `s${s}`).join('/')}` : `t/${n}`;
          if (n < j.topics) parts.push(wsClientFrame(1, Buffer.from(`{"op":"pub","topic":"${topic}","data":${n}}`)));
        }
        if (parts.length) c.socket.write(Buffer.concat(parts));
        done[ci] = due;
      });
      if (due >= per) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  for (const c of clients) c.sendText('{"op":"ping","id":"end"}');
  await Promise.race([allPongs, sleep(60_000)]);
  const result = { topics: j.topics, seconds: round((performance.now() - started) / 1000), replies: tally };
  for (const c of clients) c.socket.destroy();
  return result;
}

/**
 * One connection sending `sub # since` requests, reading everything it gets back: as fast as the socket takes them
 * (`flood`), or one after another (`sequential`: the next request goes when a ping sent after the previous ack is
 * answered, so the replay has been read too): the time per request.
 */
async function sinceFloodJob(j: Extract<WorkerJob, { kind: 'since-flood' }>) {
  const tally: Record<string, number> = {};
  const sentAt = new Map<number, number>();
  const rtt: number[] = [];
  let bytesIn = 0;
  let closedAfterMs: number | null = null;
  const t0 = performance.now();
  let next: () => void = () => undefined;
  const [c] = await openAll(1, (_, onOpen) =>
    new RawWs(j.port, {
      path: '/ws',
      localAddress: j.source,
      onOpen,
      onEnd: () => (closedAfterMs = Math.round(performance.now() - t0)),
      onText: (p) => {
        bytesIn += p.length;
        tallyFrame(tally, p);
        if (j.pace === 'sequential' && p.subarray(0, 12).toString() === '{"op":"pong"') {
          next();
          return;
        }
        if (p[7] === 0x61 /* {"op":"ack */ || p.subarray(0, 12).toString() === '{"op":"error') {
          const id = /"id":(\d+)/.exec(p.subarray(0, 200).toString())?.[1];
          const at = id !== undefined ? sentAt.get(Number(id)) : undefined;
          if (at !== undefined) rtt.push(performance.now() - at);
          if (j.pace === 'sequential') ws.sendText(`{"op":"ping","id":"p${id}"}`);
        }
      },
    }),
  );
  const ws = c!;
  ready();
  const map = j.form === 'map' ? JSON.stringify(Object.fromEntries(Array.from({ length: 1000 }, (_, k) => [`t/${k * 97}`, 1]))) : '0';
  let id = 0;
  const until = Date.now() + j.seconds * 1000;
  const start = performance.now();
  const request = (): Buffer => {
    id++;
    sentAt.set(id, performance.now());
    return wsClientFrame(1, Buffer.from(`{"op":"sub","topic":"#","since":${map},"id":${id}}`));
  };
  let finished = start;
  if (j.pace === 'flood') pump(ws.socket, request, until, { n: 0 });
  else {
    next = () => {
      finished = performance.now();
      if (Date.now() < until && !ws.ended) ws.socket.write(request());
    };
    next();
  }
  await sleep(j.seconds * 1000 + 1000);
  const perRequestMs = j.pace === 'sequential' && rtt.length ? round((finished - start) / rtt.length, 1) : undefined;
  const result = {
    form: j.form,
    pace: j.pace,
    perRequestMs,
    sent: id,
    answered: rtt.length,
    seconds: round((performance.now() - start) / 1000),
    ackRttMs: { p50: round(percentile(rtt, 50)), p99: round(percentile(rtt, 99)) },
    replies: tally,
    mbIn: round(bytesIn / MB),
    close: closeKey(ws),
    closedAfterMs,
  };
  ws.socket.destroy();
  return result;
}

/** Sockets sending request headers one byte a second; a closed one is reopened after `reopenMs`, until the end. */
async function slowHttpJob(j: Extract<WorkerJob, { kind: 'slow-http' }>) {
  const header = Buffer.from(`GET /healthz HTTP/1.1\r\nHost: ${HOST}\r\nX-Slow: ${'a'.repeat(4000)}`);
  interface Slow { s: Socket; opened: number; at: number; status: string }
  const live = new Set<Slow>();
  const lifetimes: Record<string, number[]> = {};
  const connectErrors: Record<string, number> = {};
  let attempts = 0;
  let maxOpen = 0;
  let open = 0;
  const t0 = Date.now();
  const until = t0 + j.seconds * 1000;
  let initialSettled = 0;
  let initialDone: () => void = () => undefined;
  const initial = new Promise<void>((r) => (initialDone = r));
  const openOne = (i: number, first: boolean): void => {
    if (Date.now() >= until) return;
    attempts++;
    const s = connect({ host: HOST, port: j.port, localAddress: j.sources[i % j.sources.length] });
    const slow: Slow = { s, opened: 0, at: 0, status: 'no answer' };
    let settled = false;
    const settle = (): void => {
      if (settled || !first) return;
      settled = true;
      if (++initialSettled === j.count) initialDone();
    };
    s.on('connect', () => {
      slow.opened = Date.now();
      open++;
      maxOpen = Math.max(maxOpen, open);
      live.add(slow);
      settle();
    });
    s.on('data', (d) => {
      if (slow.status === 'no answer') slow.status = d.subarray(0, 12).toString().replace('HTTP/1.1 ', 'HTTP ');
    });
    s.on('error', (err) => {
      if (!slow.opened) connectErrors[(err as NodeJS.ErrnoException).code ?? err.message] = (connectErrors[(err as NodeJS.ErrnoException).code ?? err.message] ?? 0) + 1;
    });
    s.on('close', () => {
      settle();
      if (slow.opened) {
        open--;
        live.delete(slow);
        if (Date.now() < until) (lifetimes[slow.status] ??= []).push(Date.now() - slow.opened);
      }
      setTimeout(() => openOne(i, false), j.reopenMs).unref();
    });
  };
  // Open with a bounded number of handshakes in flight.
  let next = 0;
  const burst = setInterval(() => {
    for (let k = 0; k < 400 && next < j.count; k++) openOne(next++, true);
    if (next >= j.count) clearInterval(burst);
  }, 20);
  const drip = setInterval(() => {
    for (const x of live) {
      if (x.at < header.length) x.s.write(header.subarray(x.at, ++x.at));
    }
  }, 1000);
  await Promise.race([initial, sleep(j.seconds * 1000)]);
  ready({ open, attempts });
  const openSamples: number[] = [];
  while (Date.now() < until) {
    await sleep(1000);
    openSamples.push(open);
  }
  clearInterval(drip);
  clearInterval(burst);
  const stillOpen = live.size;
  for (const x of live) x.s.destroy();
  const summary: Record<string, { n: number; p50Ms: number; maxMs: number }> = {};
  for (const [k, v] of Object.entries(lifetimes)) summary[k] = { n: v.length, p50Ms: Math.round(percentile(v, 50)), maxMs: Math.round(Math.max(...v)) };
  return { attempts, maxOpen, openEachSecond: openSamples, stillOpenAtEnd: stillOpen, lifetimes: summary, connectErrors };
}

/** Writes `frame(i)` at `perSecond` for `seconds` (in 5 ms steps, each step's frames in one write); resolves with the count. */
async function paced(c: RawWs, perSecond: number, seconds: number, frame: (i: number) => Buffer): Promise<number> {
  let sent = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = (performance.now() - started) / 1000;
      const due = Math.floor(Math.min(elapsed, seconds) * perSecond);
      const parts: Buffer[] = [];
      for (; sent < due; sent++) parts.push(frame(sent));
      if (parts.length && !c.ended) c.socket.write(Buffer.concat(parts));
      if (elapsed >= seconds) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  return sent;
}

/** One connection alternating `sub` and `unsub` of `filter`, paced at `pairsPerSecond`, tallying the replies. */
async function churnJob(j: Extract<WorkerJob, { kind: 'churn' }>) {
  const tally: Record<string, number> = {};
  const [c] = await openAll(1, (_, onOpen) => new RawWs(j.port, { path: '/ws', localAddress: j.source, onOpen, onText: (p) => tallyFrame(tally, p) }));
  ready();
  const pair = Buffer.concat([wsClientFrame(1, Buffer.from(`{"op":"sub","topic":"${j.filter}"}`)), wsClientFrame(1, Buffer.from(`{"op":"unsub","topic":"${j.filter}"}`))]);
  const sent = await paced(c!, j.pairsPerSecond, j.seconds, () => pair);
  await sleep(1000);
  const result = { filter: j.filter, pairsSent: sent, replies: tally, close: closeKey(c!) };
  c!.socket.destroy();
  return result;
}

/** One connection publishing to `topic` at a steady `ratePerSecond` (notifications), tallying what comes back. */
async function pacedJob(j: Extract<WorkerJob, { kind: 'paced' }>) {
  const tally: Record<string, number> = {};
  let closedAfterMs: number | null = null;
  const t0 = performance.now();
  const [c] = await openAll(1, (_, onOpen) =>
    new RawWs(j.port, { path: '/ws', localAddress: j.source, onOpen, onText: (p) => tallyFrame(tally, p), onEnd: () => (closedAfterMs = Math.round(performance.now() - t0)) }),
  );
  ready();
  const sent = await paced(c!, j.ratePerSecond, j.seconds, (i) => wsClientFrame(1, Buffer.from(`{"op":"pub","topic":"${j.topic}","data":${i}}`)));
  await sleep(1500);
  const result = { ratePerSecond: j.ratePerSecond, sent, replies: tally, close: closeKey(c!), closedAfterMs };
  c!.socket.destroy();
  return result;
}

/** Connections sending `size`-byte directs to one client as fast as they can, reading what comes back. */
async function directsJob(j: Extract<WorkerJob, { kind: 'directs' }>) {
  const tally: Record<string, number> = {};
  const closedAt: number[] = [];
  const t0 = performance.now();
  const clients = await openAll(j.conns, (_, onOpen) =>
    new RawWs(j.port, { path: '/ws', localAddress: j.source, onOpen, onText: (p) => tallyFrame(tally, p), onEnd: () => closedAt.push(Math.round(performance.now() - t0)) }),
  );
  ready();
  const frame = wsClientFrame(1, Buffer.from(`{"op":"send","to":"${j.to}","data":"${'d'.repeat(j.size)}"}`));
  const until = Date.now() + j.seconds * 1000;
  const counts = clients.map(() => ({ n: 0 }));
  clients.forEach((c, i) => pump(c.socket, () => frame, until, counts[i]!));
  await sleep(j.seconds * 1000 + 500);
  const result = { sent: counts.reduce((a, c) => a + c.n, 0), replies: tally, closes: countBy(clients, closeKey), closedAfterMs: closedAt };
  for (const c of clients) c.socket.destroy();
  return result;
}

async function workerMain(): Promise<void> {
  process.on('message', (m: { type: string; job?: WorkerJob }) => {
    if (m.type === 'stop') stopRequested();
    if (m.type !== 'run' || !m.job) return;
    const j = m.job;
    const run =
      j.kind === 'history' ? historyJob(j)
      : j.kind === 'tcp-crowd' ? tcpCrowdJob(j)
      : j.kind === 'who-ws' ? whoWsJob(j)
      : j.kind === 'who-tcp' ? whoTcpJob(j)
      : j.kind === 'fill' ? fillJob(j)
      : j.kind === 'since-flood' ? sinceFloodJob(j)
      : j.kind === 'slow-http' ? slowHttpJob(j)
      : j.kind === 'churn' ? churnJob(j)
      : j.kind === 'paced' ? pacedJob(j)
      : directsJob(j);
    run.then(
      (result) => process.send!({ type: 'done', result }, () => process.exit(0)),
      (err: Error) => process.send!({ type: 'done', result: { error: err.message } }, () => process.exit(1)),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

// ====================================================================== main side: broker, victim, probes
class Attacker {
  readonly child: ChildProcess;
  readonly ready: Promise<any>;
  readonly done: Promise<any>;
  constructor(job: WorkerJob, timeoutMs: number) {
    this.child = fork(HERE + 'attacks.ts', ['--worker'], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let onReady: (m: any) => void = () => undefined;
    let onDone: (m: any) => void = () => undefined;
    this.ready = new Promise((r) => (onReady = r));
    this.done = new Promise((r) => (onDone = r));
    const kill = setTimeout(() => {
      onReady({ error: 'timeout' });
      onDone({ error: `worker ${job.kind} timed out after ${timeoutMs} ms` });
      this.child.kill('SIGKILL');
    }, timeoutMs);
    this.child.on('message', (m: any) => {
      if (m.type === 'ready') onReady(m);
      if (m.type === 'done') {
        clearTimeout(kill);
        onReady(m.result);
        onDone(m.result);
      }
    });
    this.child.on('exit', () => {
      clearTimeout(kill);
      onReady({ error: 'exited' });
      onDone({ error: 'worker exited without a result' });
    });
    this.child.send({ type: 'run', job });
  }
  stop(): void {
    if (this.child.connected) this.child.send({ type: 'stop' });
  }
}

let nextPort = 18_600;

class Broker {
  readonly port = nextPort++;
  readonly tcpPort = nextPort++;
  readonly child: ChildProcess;
  exit: { code: number | null; signal: string | null; atMs: number } | null = null;
  private logs: { level: number; msg: string; t: number }[] = [];
  private stderrTail = '';
  private readonly started = Date.now();
  peakRss = 0;
  private sampler: NodeJS.Timeout;
  readonly args: string[];

  constructor(readonly extra: string[]) {
    this.args = [...startScriptFlags(), 'dist/cli.js', 'serve', '--port', String(this.port), '--tcp-port', String(this.tcpPort), ...extra];
    this.child = spawn(process.execPath, this.args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const o = JSON.parse(line) as { level: number; msg: string };
          if (this.logs.length < 100_000) this.logs.push({ level: o.level, msg: String(o.msg), t: Date.now() });
        } catch {
          if (this.logs.length < 100_000) this.logs.push({ level: 0, msg: line.slice(0, 120), t: Date.now() });
        }
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderrTail = (this.stderrTail + d.toString()).slice(-2000)));
    this.child.on('exit', (code, signal) => (this.exit = { code, signal, atMs: Date.now() - this.started }));
    this.sampler = setInterval(() => this.rss(), 200);
  }

  get pid(): number {
    return this.child.pid!;
  }
  get alive(): boolean {
    return this.exit === null;
  }
  rss(): number {
    if (!this.alive) return 0;
    try {
      const r = rssBytes(this.pid);
      this.peakRss = Math.max(this.peakRss, r);
      return r;
    } catch {
      return 0;
    }
  }
  cpu(): number {
    try {
      return cpuUs(this.pid);
    } catch {
      return NaN;
    }
  }
  async ready(): Promise<void> {
    const until = Date.now() + 15_000;
    while (Date.now() < until) {
      if (await portOpen(this.port)) return;
      if (!this.alive) throw new Error(`broker exited: ${this.stderrTail}`);
      await sleep(100);
    }
    throw new Error('broker did not listen within 15 s');
  }
  /** Log lines since `since` (ms epoch), grouped by level and message (counts after the numbers are masked). */
  logsSince(since: number): { lines: number; byMessage: Record<string, number> } {
    const xs = this.logs.filter((l) => l.t >= since);
    const lv: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
    return { lines: xs.length, byMessage: countBy(xs, (l) => `${lv[l.level] ?? '?'}: ${l.msg.replace(/\d+/g, 'N').slice(0, 140)}`) };
  }
  stderr(): string {
    return this.stderrTail;
  }
  async stop(): Promise<void> {
    clearInterval(this.sampler);
    if (!this.alive) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    if (this.alive) this.child.kill('SIGKILL');
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: HOST, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function wsOpen(url: string, localAddress: string, timeoutMs: number): Promise<{ ws: WebSocket | null; outcome: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress, handshakeTimeout: timeoutMs });
    let done = false;
    const finish = (w: WebSocket | null, outcome: string): void => {
      if (done) return;
      done = true;
      clearTimeout(t);
      resolve({ ws: w, outcome, ms: round(performance.now() - t0) });
    };
    const t = setTimeout(() => {
      ws.terminate();
      finish(null, 'timeout');
    }, timeoutMs);
    ws.once('message', () => finish(ws, 'hello')); // served: the hello frame arrived
    ws.once('unexpected-response', (_req, res) => {
      finish(null, `HTTP ${res.statusCode}`);
      ws.terminate();
    });
    ws.once('error', (err) => finish(null, `error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
  });
}

function healthz(port: number, timeoutMs: number): Promise<{ outcome: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome: string): void => {
      if (done) return;
      done = true;
      resolve({ outcome, ms: round(performance.now() - t0) });
    };
    const req = request({ host: HOST, port, path: '/healthz', localAddress: PROBE_ADDR, timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      finish(`HTTP ${res.statusCode}`);
    });
    req.on('timeout', () => {
      req.destroy();
      finish('timeout');
    });
    req.on('error', (err) => finish(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    req.end();
  });
}

/** The victim: a WebSocket subscriber of `victim`, fed at 20 msg/s by a publisher of its own; latency per message. */
class Victim {
  sub!: WebSocket;
  pub!: WebSocket;
  closeCode: number | null = null;
  closedAfterMs: number | null = null;
  directs = 0;
  directBytes = 0;
  private sentAt = new Map<number, number>();
  private latency = new Map<number, number>();
  private n = 0;
  private timer: NodeJS.Timeout | undefined;
  private windowStart = 0;
  private windowEnd = Infinity;
  private t0 = 0;

  static async connect(port: number, name = 'victim'): Promise<Victim> {
    const v = new Victim();
    const url = `ws://${HOST}:${port}/ws`;
    const sub = await wsOpen(`${url}/victim?name=${name}`, VICTIM_ADDR, 10_000);
    const pub = await wsOpen(url, VICTIM_ADDR, 10_000);
    if (!sub.ws || !pub.ws) throw new Error(`victim could not connect: ${sub.outcome} / ${pub.outcome}`);
    v.sub = sub.ws;
    v.pub = pub.ws;
    v.sub.on('message', (data: Buffer) => {
      const head = data.subarray(0, 20).toString();
      if (head.startsWith('{"op":"msg"')) {
        const m = /"data":\{"i":(\d+)\}/.exec(data.toString());
        const i = m ? Number(m[1]) : -1;
        const at = v.sentAt.get(i);
        if (at !== undefined && !v.latency.has(i)) v.latency.set(i, performance.now() - at);
      } else if (head.startsWith('{"op":"direct"')) {
        v.directs++;
        v.directBytes += data.length;
      }
    });
    v.sub.on('close', (code) => {
      v.closeCode = code;
      v.closedAfterMs = v.t0 ? Math.round(performance.now() - v.t0) : 0;
    });
    return v;
  }

  /** Starts publishing; the window of expected messages opens now. */
  start(): void {
    this.t0 = performance.now();
    this.windowStart = this.n;
    this.windowEnd = Infinity;
    const started = performance.now();
    let due = 0;
    this.timer = setInterval(() => {
      const target = Math.floor((performance.now() - started) / 50);
      for (; due < target; due++) {
        if (this.pub.readyState !== WebSocket.OPEN) continue;
        const i = this.n++;
        this.sentAt.set(i, performance.now());
        this.pub.send(`{"op":"pub","topic":"victim","data":{"i":${i}}}`);
      }
    }, 10);
  }

  /** Stops publishing, waits `graceMs` for stragglers, and reports the window. */
  async finish(graceMs = 5000): Promise<VictimReport> {
    clearInterval(this.timer);
    this.windowEnd = this.n;
    await sleep(graceMs);
    const lat: number[] = [];
    for (let i = this.windowStart; i < this.windowEnd; i++) {
      const l = this.latency.get(i);
      if (l !== undefined) lat.push(l);
    }
    return {
      expected: this.windowEnd - this.windowStart,
      delivered: lat.length,
      p50Ms: round(percentile(lat, 50), 1),
      p99Ms: round(percentile(lat, 99), 1),
      maxMs: round(lat.length ? Math.max(...lat) : NaN, 1),
      closed: this.closeCode,
      closedAfterMs: this.closedAfterMs,
      directs: this.directs,
      directMB: round(this.directBytes / MB, 1),
    };
  }

  close(): void {
    clearInterval(this.timer);
    this.sub.terminate();
    this.pub.terminate();
  }
}
interface VictimReport {
  expected: number;
  delivered: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  closed: number | null;
  closedAfterMs: number | null;
  directs: number;
  directMB: number;
}

interface AttackResult {
  brokerArgs: string[];
  loadavg: string;
  [k: string]: unknown;
}

/** Runs `fn` against a fresh broker with a connected victim; adds RSS, CPU, survival and logs. */
async function withBroker(extra: string[], fn: (b: Broker, v: Victim) => Promise<Record<string, unknown>>): Promise<AttackResult> {
  const b = new Broker(extra);
  try {
    await b.ready();
    await sleep(300);
    const v = await Victim.connect(b.port);
    const rssStart = b.rss();
    const cpu0 = b.cpu();
    const t0 = Date.now();
    const load0 = loadavg();
    const out = await fn(b, v);
    v.close();
    const cpu1 = b.cpu();
    return {
      brokerArgs: b.args.slice(b.args.indexOf('serve') + 5),
      loadavg: `${load0} → ${loadavg()}`,
      rssStartMB: round(rssStart / MB),
      peakRssMB: round(b.peakRss / MB),
      rssEndMB: round(b.rss() / MB),
      brokerCpuS: round((cpu1 - cpu0) / 1e6, 1),
      survived: b.alive,
      exit: b.exit,
      stderrTail: b.alive ? undefined : b.stderr().slice(-600),
      logs: b.logsSince(t0),
      ...out,
    };
  } finally {
    await b.stop();
  }
}

// ---------------------------------------------------------------- the attacks
async function attackHistory(seconds: number): Promise<AttackResult> {
  return withBroker([], async (b, v) => {
    const a = new Attacker({ kind: 'history', port: b.port, conns: 5, ratePerConn: 180, size: 60_000, seconds }, (seconds + 60) * 1000);
    await a.ready;
    v.start();
    const rssEverySecond: number[] = [];
    for (let s = 0; s < seconds; s++) {
      await sleep(1000);
      rssEverySecond.push(round(b.rss() / MB, 0));
    }
    const attacker = await a.done;
    return { attack: `5 conns × 180 msg/s × 60 KB to new topics, ${seconds} s`, attacker, rssEverySecondMB: rssEverySecond, victim: await v.finish() };
  });
}

async function attackWho(): Promise<AttackResult> {
  const crowdN = 5000;
  return withBroker(['--max-connections-per-ip', '10000'], async (b, v) => {
    const crowd = [0, 1].map((w) => new Attacker({ kind: 'tcp-crowd', tcpPort: b.tcpPort, count: crowdN / 2, sources: [1, 2, 3, 4, 5].map((k) => addr(10 + w * 5 + k)) }, 240_000));
    const crowdReady = await Promise.all(crowd.map((c) => c.ready));
    const rssCrowd = b.rss();
    // WebSocket `who`, 25 connections from one IP, never reading.
    const wsA = new Attacker({ kind: 'who-ws', port: b.port, conns: 25, seconds: 30, source: addr(5) }, 90_000);
    const wsReady = await wsA.ready;
    b.peakRss = 0;
    v.start();
    const wsAttacker = await wsA.done;
    const wsVictim = await v.finish(5000);
    const wsPeak = b.peakRss;
    // Plain-text `who` over TCP, 10 sockets, never reading.
    const tcpA = new Attacker({ kind: 'who-tcp', tcpPort: b.tcpPort, conns: 10, seconds: 20, source: addr(6) }, 90_000);
    await tcpA.ready;
    b.peakRss = 0;
    v.start();
    const tcpAttacker = await tcpA.done;
    const tcpVictim = await v.finish(5000);
    const tcpPeak = b.peakRss;
    for (const c of crowd) c.stop();
    const crowdDone = await Promise.all(crowd.map((c) => c.done));
    b.peakRss = Math.max(wsPeak, tcpPeak);
    return {
      crowd: { ready: crowdReady, done: crowdDone, rssWithCrowdMB: round(rssCrowd / MB) },
      ws: { attack: '25 WebSocket conns from one IP, who limit 1000, never reading, 30 s', ready: wsReady, attacker: wsAttacker, peakRssMB: round(wsPeak / MB), victim: wsVictim },
      tcp: { attack: '10 TCP sockets, plain-text who, never reading, 20 s', attacker: tcpAttacker, peakRssMB: round(tcpPeak / MB), victim: tcpVictim },
    };
  });
}

async function attackSince(): Promise<AttackResult> {
  const topics = 100_000;
  return withBroker(['--max-topics', '110000'], async (b, v) => {
    const fillT0 = performance.now();
    const fill = await new Attacker({ kind: 'fill', port: b.port, conns: 25, topics, ratePerConn: 800, source: addr(30) }, 180_000).done;
    const fillS = round((performance.now() - fillT0) / 1000);
    const rssFilled = b.rss();
    const forms: Record<string, unknown> = {};
    for (const [form, pace] of [['number', 'flood'], ['map', 'flood'], ['number', 'sequential'], ['map', 'sequential']] as const) {
      const a = new Attacker({ kind: 'since-flood', port: b.port, seconds: pace === 'flood' ? 20 : 10, form, pace, source: addr(31) }, 90_000);
      await a.ready;
      b.peakRss = 0;
      v.start();
      const cpu0 = b.cpu();
      const attacker = await a.done;
      const cpuMs = (b.cpu() - cpu0) / 1000;
      const victim = await v.finish(5000);
      forms[`${form}-${pace}`] = {
        attacker,
        brokerCpuMsPerAnswer: round(cpuMs / Math.max(1, (attacker as { answered: number }).answered), 2),
        peakRssMB: round(b.peakRss / MB),
        victim,
      };
    }
    // One subscriber asking for everything once, with far more than 1,000 messages held.
    const one = await oneWildcardSince(b.port);
    return { fill: { ...fill, wallS: fillS, rssAfterFillMB: round(rssFilled / MB) }, ...forms, oneSubscriber: one };
  });
}

async function oneWildcardSince(port: number) {
  const { ws, outcome } = await wsOpen(`ws://${HOST}:${port}/ws`, addr(32), 10_000);
  if (!ws) return { error: outcome };
  let ack: Record<string, unknown> | null = null;
  let msgs = 0;
  let close: number | null = null;
  const t0 = performance.now();
  let ackMs = 0;
  ws.on('message', (d: Buffer) => {
    const s = d.toString();
    if (s.startsWith('{"op":"ack"')) {
      ackMs = round(performance.now() - t0);
      ack = JSON.parse(s) as Record<string, unknown>;
    } else if (s.startsWith('{"op":"msg"')) msgs++;
  });
  ws.on('close', (code) => (close = code));
  ws.send('{"op":"sub","topic":"#","since":0,"id":1}');
  await sleep(3000);
  ws.terminate();
  const a = ack as Record<string, unknown> | null;
  return {
    ackMs,
    ack: a && {
      recovered: a.recovered,
      reason: a.reason,
      truncated: a.truncated,
      missed: a.missed && typeof a.missed === 'object' ? Object.fromEntries(Object.entries(a.missed as object).slice(0, 5)) : a.missed,
      missedCount: a.missed && typeof a.missed === 'object' ? Object.keys(a.missed as object).length : 0,
      positionsCount: a.positions && typeof a.positions === 'object' ? Object.keys(a.positions as object).length : 0,
    },
    replayedMsgs: msgs,
    closed: close,
  };
}

async function attackSlowHttp(): Promise<AttackResult> {
  const sources = Array.from({ length: 20 }, (_, k) => addr(100 + k)); // 20 × 999 = 19,980, under 1000 per IP
  const per = 19_980 / 4;
  return withBroker([], async (b, v) => {
    const seconds = 35;
    const attackers = [0, 1, 2, 3].map((w) => new Attacker({ kind: 'slow-http', port: b.port, count: per, sources: sources.slice(w * 5, w * 5 + 5), seconds, reopenMs: 1000 }, 120_000));
    const t0 = Date.now();
    v.start();
    // Probes: a new WebSocket client and a /healthz request from a fresh address, once a second.
    const probes: { t: number; ws: string; wsMs: number; healthz: string; healthzMs: number }[] = [];
    while (Date.now() - t0 < seconds * 1000) {
      const [w, h] = await Promise.all([wsOpen(`ws://${HOST}:${b.port}/ws`, PROBE_ADDR, 3000), healthz(b.port, 3000)]);
      w.ws?.terminate();
      probes.push({ t: round((Date.now() - t0) / 1000), ws: w.outcome, wsMs: w.ms, healthz: h.outcome, healthzMs: h.ms });
      await sleep(1000);
    }
    const attackerResults = await Promise.all(attackers.map((a) => a.done));
    const victim = await v.finish(3000);
    const merged = {
      attempts: attackerResults.reduce((a, r) => a + (r.attempts ?? 0), 0),
      maxOpenSum: attackerResults.reduce((a, r) => a + (r.maxOpen ?? 0), 0),
      openEachSecond: attackerResults[0]?.openEachSecond?.map((_: number, i: number) => attackerResults.reduce((a, r) => a + (r.openEachSecond?.[i] ?? 0), 0)),
      lifetimes: attackerResults.map((r) => r.lifetimes),
      connectErrors: attackerResults.map((r) => r.connectErrors),
    };
    return {
      attack: `19,980 sockets from 20 addresses, headers 1 byte/s, reopened 1 s after close, ${seconds} s`,
      ulimitN: readFileSync(`/proc/${b.pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'))?.replace(/\s+/g, ' '),
      attacker: merged,
      probes: {
        ws: countBy(probes, (p) => p.ws),
        healthz: countBy(probes, (p) => p.healthz),
        wsServedP50Ms: round(percentile(probes.filter((p) => p.ws === 'hello').map((p) => p.wsMs), 50)),
        healthzServedP50Ms: round(percentile(probes.filter((p) => p.healthz === 'HTTP 200').map((p) => p.healthzMs), 50)),
        timeline: probes.map((p) => `${p.t}s ws:${p.ws} healthz:${p.healthz}`),
      },
      victim,
    };
  });
}

async function attackDirects(): Promise<AttackResult> {
  return withBroker([], async (b, v) => {
    const a = new Attacker({ kind: 'directs', port: b.port, conns: 4, to: 'victim', size: 60_000, seconds: 20, source: addr(50) }, 90_000);
    await a.ready;
    v.start();
    const attacker = await a.done;
    return { attack: '4 conns sending 60 KB directs to the victim as fast as they can, 20 s', attacker, victim: await v.finish(3000) };
  });
}

// ---------------------------------------------------------------- round three (issue 19)

/** Fills the match cache with 9,900 topics, then churns each filter for `seconds` (450 sub/unsub pairs a second). */
async function attackChurn(seconds = 20): Promise<AttackResult> {
  return withBroker([], async (b, v) => {
    const fill = await new Attacker({ kind: 'fill', port: b.port, conns: 10, topics: 9_900, ratePerConn: 800, source: addr(70) }, 120_000).done;
    const runs: Record<string, unknown> = {};
    for (const filter of ['zz/+/x', '+/+/x']) {
      const a = new Attacker({ kind: 'churn', port: b.port, filter, pairsPerSecond: 450, seconds, source: addr(71) }, (seconds + 60) * 1000);
      await a.ready;
      v.start();
      const cpu0 = b.cpu();
      const attacker = await a.done;
      const cpuS = round((b.cpu() - cpu0) / 1e6, 1);
      const h = await healthz(b.port, 5000);
      runs[filter] = { attacker, brokerCpuS: cpuS, healthzAfterMs: h.outcome === 'HTTP 200' ? h.ms : h.outcome, victim: await v.finish(3000) };
    }
    return { attack: `9,900 topics cached, then one connection alternating sub/unsub of a wildcard at 900 frames/s, ${seconds} s per filter`, fill, ...runs };
  });
}

/** An honest client at half the default rate and a flooder at 3x; the broker is stopped (SIGSTOP) for 5 s meanwhile. */
async function attackStall(stallMs = 5000): Promise<AttackResult> {
  return withBroker([], async (b, v) => {
    const honest = new Attacker({ kind: 'paced', port: b.port, topic: 'honest', ratePerSecond: 500, seconds: 12, source: addr(80) }, 60_000);
    await honest.ready;
    v.start();
    await sleep(1500);
    const flooder = new Attacker({ kind: 'paced', port: b.port, topic: 'flood', ratePerSecond: 3000, seconds: 9, source: addr(81) }, 60_000);
    await flooder.ready;
    await sleep(200);
    process.kill(b.pid, 'SIGSTOP');
    await sleep(stallMs);
    process.kill(b.pid, 'SIGCONT');
    const [h, f] = await Promise.all([honest.done, flooder.done]);
    return { attack: `broker stopped ${stallMs / 1000} s (SIGSTOP) while a client publishes at 500/s (--rate 1000) and a flooder at 3000/s`, honest: h, flooder: f, victim: await v.finish(3000) };
  });
}

/** Heap and RSS after 300,000 distinct 16-segment topics (one publish each), with --topic-names-bytes as given. */
async function attackNames(): Promise<AttackResult> {
  const one = (extra: string[]) =>
    withBroker(extra, async (b, v) => {
      v.start();
      const t0 = performance.now();
      const fill = await new Attacker({ kind: 'fill', port: b.port, conns: 25, topics: 300_000, ratePerConn: 800, source: addr(90), segments: 16 }, 300_000).done;
      const fillS = round((performance.now() - t0) / 1000);
      await sleep(3000);
      const metrics = await (await fetch(`http://${HOST}:${b.port}/metrics`)).text();
      const heap = Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(metrics)?.[1]);
      const topics = (await (await fetch(`http://${HOST}:${b.port}/api/topics?limit=1`)).json()) as { total: number };
      return { fill: { ...fill, wallS: fillS }, heapUsedMB: round(heap / MB), rssMB: round(b.rss() / MB), topicsRemembered: topics.total, victim: await v.finish(3000) };
    });
  return {
    brokerArgs: [],
    loadavg: loadavg(),
    attack: '300,000 distinct 16-segment topics, one publish each (25 connections), then heap used (/metrics) and RSS after 3 s',
    bounded: await one([]).catch((err: Error) => ({ error: err.message })),
    unbounded: await one(['--topic-names-bytes', String(64 * 1024 ** 3)]).catch((err: Error) => ({ error: err.message })),
  };
}

/** 500 aborted `POST /api/publish` uploads in about 2 s: what the broker logs. */
async function attackAborts(): Promise<AttackResult> {
  return withBroker([], async (b, v) => {
    v.start();
    const t0 = Date.now();
    const one = () =>
      new Promise<void>((resolve) => {
        const s = connect({ host: HOST, port: b.port, localAddress: addr(95) }, () => {
          s.write(`POST /api/publish HTTP/1.1\r\nHost: ${HOST}:${b.port}\r\nContent-Length: 1000\r\n\r\n{"topic":"t","data":"`);
          setTimeout(() => s.destroy(), 5);
        });
        s.on('error', () => undefined);
        s.on('close', () => resolve());
      });
    for (let i = 0; i < 500; i += 50) {
      await Promise.all(Array.from({ length: 50 }, one));
      await sleep(150);
    }
    const seconds = round((Date.now() - t0) / 1000);
    await sleep(1500);
    return { attack: `500 aborted uploads in ${seconds} s`, logs: b.logsSince(t0), victim: await v.finish(2000) };
  });
}

// ---------------------------------------------------------------- report
const BEFORE: Record<AttackName, string> = {
  history: 'RSS 67 MB → 4.1 GB in 46 s, then heap OOM',
  who: 'RSS 3.2 GB; victim 2/589 in 30 s; over TCP (10 sockets) victim p50 11.7 s',
  since: '88 ms per request; victim 2/399; one `sub # since:0` over >1,000 messages closed the subscriber 4001',
  'slow-http': 'fds exhausted, new clients refused for 50 s, /healthz timed out, nothing logged',
  directs: 'victim closed 4001 within a second',
  churn: 'one add+remove 14.5 ms; broker at 100 % CPU, victim p50 12.6 s, p99 27 s; /healthz slow 23 s after',
  stall: 'honest client answered rate_limited ~100 times, closed 1008',
  names: 'heap 1.44 GB',
  aborts: '500 error-level lines with stack traces',
};

function vict(v: VictimReport | undefined): string {
  if (!v) return '?';
  return `victim ${v.delivered}/${v.expected}, p50 ${v.p50Ms} ms, p99 ${v.p99Ms} ms${v.closed !== null ? `, closed ${v.closed}` : ''}`;
}

function after(name: AttackName, r: any): string {
  if (r.error) return `error: ${r.error}`;
  const alive = r.survived ? 'broker survived' : `broker died (${JSON.stringify(r.exit)})`;
  switch (name) {
    case 'history':
      return `peak RSS ${r.peakRssMB} MB (start ${r.rssStartMB}), ${alive}; ${vict(r.victim)}`;
    case 'who':
      return `WS: peak RSS ${r.ws.peakRssMB} MB, ${vict(r.ws.victim)}, ${r.ws.attacker.socketsEndedByBroker}/25 spammers cut; TCP: peak RSS ${r.tcp.peakRssMB} MB, ${vict(r.tcp.victim)}, ${r.tcp.attacker.socketsEndedByBroker}/10 cut`;
    case 'since': {
      const f = (x: any) => `${x.attacker.answered} answered, attacker ${x.attacker.close}${x.attacker.closedAfterMs !== null ? ` after ${x.attacker.closedAfterMs} ms` : ''}, ${vict(x.victim)}`;
      const q = (x: any) => `${x.attacker.perRequestMs} ms per request (broker CPU ${x.brokerCpuMsPerAnswer} ms), ${vict(x.victim)}`;
      const o = r.oneSubscriber;
      return `flood, number form: ${f(r['number-flood'])}; flood, map form: ${f(r['map-flood'])}; one after another: number ${q(r['number-sequential'])}, map ${q(r['map-sequential'])}; one sub # since:0: ack ${JSON.stringify(o.ack ? { recovered: o.ack.recovered, reason: o.ack.reason, truncated: o.ack.truncated } : null)}, ${o.replayedMsgs} replayed, ${o.closed === null ? 'not closed' : `closed ${o.closed}`}`;
    }
    case 'slow-http':
      return `new WS: ${JSON.stringify(r.probes.ws)}; /healthz: ${JSON.stringify(r.probes.healthz)}; slow-socket lifetimes ${JSON.stringify(r.attacker.lifetimes[0])}; logs ${r.logs.lines} lines; ${vict(r.victim)}`;
    case 'directs':
      return `${vict(r.victim)}, ${r.victim.directs} directs delivered; flooders: ${JSON.stringify(r.attacker.replies)}, ${JSON.stringify(r.attacker.closes)}`;
    case 'churn': {
      const c = (x: any) => `${x.attacker.pairsSent} pairs, replies ${JSON.stringify(x.attacker.replies)}, broker CPU ${x.brokerCpuS} s, /healthz after ${x.healthzAfterMs} ms, ${vict(x.victim)}`;
      return `zz/+/x: ${c(r['zz/+/x'])}; +/+/x: ${c(r['+/+/x'])}`;
    }
    case 'stall':
      return `honest: ${JSON.stringify(r.honest.replies)}, ${r.honest.close}; flooder: ${JSON.stringify(r.flooder.replies)}, ${r.flooder.close}; ${vict(r.victim)}`;
    case 'names':
      return `default: heap ${r.bounded.heapUsedMB} MB, RSS ${r.bounded.rssMB} MB, ${r.bounded.topicsRemembered} topics remembered; without the bound: heap ${r.unbounded.heapUsedMB} MB, RSS ${r.unbounded.rssMB} MB, ${r.unbounded.topicsRemembered} remembered`;
    case 'aborts':
      return `${r.logs.lines} log lines: ${JSON.stringify(r.logs.byMessage)}; ${vict(r.victim)}`;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: 'string' }, 'history-seconds': { type: 'string', default: '30' }, out: { type: 'string' }, worker: { type: 'boolean', default: false } } });
  const only = (values.only?.split(',') as AttackName[] | undefined) ?? ALL;
  const results: Partial<Record<AttackName, unknown>> = {};
  console.log(`# switchboard attacks after the fixes\n${new Date().toISOString()} · node ${process.version} · loadavg ${loadavg()}\n`);
  for (const name of only) {
    process.stdout.write(`${name} … `);
    const t = Date.now();
    try {
      results[name] =
        name === 'history' ? await attackHistory(Number(values['history-seconds']))
        : name === 'who' ? await attackWho()
        : name === 'since' ? await attackSince()
        : name === 'slow-http' ? await attackSlowHttp()
        : name === 'churn' ? await attackChurn()
        : name === 'stall' ? await attackStall()
        : name === 'names' ? await attackNames()
        : name === 'aborts' ? await attackAborts()
        : await attackDirects();
    } catch (err) {
      results[name] = { error: (err as Error).stack ?? String(err) };
    }
    console.log(`(${Math.round((Date.now() - t) / 1000)} s)\n${JSON.stringify(results[name], null, 1)}\n`);
    await sleep(2000);
  }
  const rows = only.map((n) => `| ${n} | ${BEFORE[n]} | ${after(n, results[n])} |`);
  const md = ['| attack | before | after |', '|---|---|---|', ...rows].join('\n');
  console.log(md);
  const dir = HERE + 'results/';
  mkdirSync(dir, { recursive: true });
  const file = values.out ?? (only.length === ALL.length ? 'attacks.json' : `attacks-${only.join('-')}.json`);
  writeFileSync(dir + file, JSON.stringify({ date: new Date().toISOString(), node: process.version, results, markdown: md }, null, 2) + '\n');
  console.log(`written test/bench/results/${file}`);
  process.exit(0);
}

if (process.argv.includes('--worker')) void workerMain();
else
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });

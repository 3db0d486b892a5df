// Servers under test: each in its own process (Switchboard as users run it, from dist/), or the local
// Mosquitto and NATS daemons. CPU and RSS are read from /proc/<pid> of that process only.
import { fork, spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Proto } from './wire.js';

/** `switchboard-mqtt`: Switchboard driven over its MQTT listener (--mqtt-port) by the same MQTT clients as Mosquitto. */
export type ServerName = 'switchboard' | 'ws' | 'socket.io' | 'mosquitto' | 'nats' | 'switchboard-mqtt';
export const ALL_SERVERS: ServerName[] = ['switchboard', 'ws', 'socket.io', 'mosquitto', 'nats'];
export const PROTO: Record<ServerName, Proto> = { switchboard: 'sb', ws: 'ws', 'socket.io': 'sio', mosquitto: 'mqtt', nats: 'nats', 'switchboard-mqtt': 'mqtt' };

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HERE = fileURLToPath(new URL('.', import.meta.url));
const TICK_US = 1_000_000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim() || 100);

export interface ServerOptions {
  port: number;
  heartbeatMs?: number;
  /** Extra node flags for Switchboard (e.g. --cpu-prof). */
  nodeFlags?: string[];
  mailboxSize?: number;
  /** The build to run (default dist/): lets an A/B run compare two builds of Switchboard. */
  dist?: string;
  /** A node of a cluster on this Redis: Switchboard `serve --redis`, Socket.IO with @socket.io/redis-adapter. */
  redisUrl?: string;
}

export interface RunningServer {
  name: ServerName;
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/** user+sys CPU time of `pid` in µs. */
export function cpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_US; // utime, stime (fields 14 and 15)
}

/** Resident set size of `pid` in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function waitPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await portOpen(port)) return;
    await sleep(100);
  }
  throw new Error(`nothing listening on ${port} after ${ms} ms`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function pidOf(exe: string): number {
  try {
    return Number(execFileSync('pidof', ['-s', exe]).toString().trim());
  } catch {
    return 0;
  }
}

async function daemon(name: 'mosquitto' | 'nats', port: number): Promise<RunningServer> {
  const exe = name === 'mosquitto' ? 'mosquitto' : 'nats-server';
  if (!(await portOpen(port))) {
    // Start commands from this machine's setup; harmless when the daemon is already up.
    if (name === 'mosquitto') spawn('mosquitto', ['-d', '-c', '/etc/mosquitto/mosquitto.conf'], { stdio: 'ignore' });
    else
      spawn('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/nats-server', '--', '-a', '127.0.0.1', '-p', '4222', '-js', '-sd', '/var/lib/nats-server', '-l', '/var/log/nats-server.log'], { stdio: 'ignore' });
    await waitPort(port, 5000);
  }
  const pid = pidOf(exe);
  if (!pid) throw new Error(`${exe} is listening on ${port} but its pid was not found`);
  return { name, pid, port, stop: async () => {} };
}

/** The node flags of `npm start` (package.json), so the bench runs Switchboard the way users start it. */
export function startScriptFlags(): string[] {
  const pkg = JSON.parse(readFileSync(ROOT + 'package.json', 'utf8')) as { scripts?: Record<string, string> };
  const m = /\bnode ((?:--\S+ )*)dist\/cli\.js/.exec(pkg.scripts?.start ?? '');
  return m ? m[1]!.trim().split(' ').filter(Boolean) : [];
}

let helpText: string | undefined;
/** Keeps the flag/value pairs this build of `switchboard serve` knows (limits arrived in later versions). */
function supported(pairs: string[]): string[] {
  helpText ??= execFileSync(process.execPath, ['dist/cli.js', 'serve', '--help'], { cwd: ROOT }).toString();
  const out: string[] = [];
  for (let i = 0; i < pairs.length; i += 2) if (helpText.includes(pairs[i]! + ' ')) out.push(pairs[i]!, pairs[i + 1]!);
  return out;
}

export async function startServer(name: ServerName, opts: ServerOptions): Promise<RunningServer> {
  if (name === 'mosquitto') return daemon(name, 1883);
  if (name === 'nats') return daemon(name, 4222);
  let child: ChildProcess;
  if (name === 'switchboard' || name === 'switchboard-mqtt') {
    const mqtt = name === 'switchboard-mqtt';
    const args = [
      ...startScriptFlags(),
      ...(opts.nodeFlags ?? []),
      `${opts.dist ?? 'dist'}/cli.js`, 'serve',
      // Over MQTT the clients connect to `port`, and HTTP takes the port 10,000 above it.
      '--port', String(mqtt ? opts.port + 10_000 : opts.port),
      ...(mqtt ? ['--mqtt-port', String(opts.port)] : []),
      '--tcp-port', '0',
      '--log-level', 'warn',
      '--idle-ms', '86400000',
      '--heartbeat-ms', String(opts.heartbeatMs ?? 25_000),
      '--mailbox-size', String(opts.mailboxSize ?? 10_000),
      // Limits the peers do not have: the bench publisher sends thousands of frames a second, and the
      // memory and scale workloads open tens of thousands of connections from four loopback addresses.
      ...supported(['--rate', '0', '--max-connections', '1000000', '--max-connections-per-ip', '1000000']),
      ...(opts.redisUrl ? ['--redis', opts.redisUrl] : []),
    ];
    child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  } else {
    const file = name === 'ws' ? 'servers/ws-broadcast.ts' : 'servers/socketio.ts';
    child = fork(HERE + file, [String(opts.port), String(opts.heartbeatMs ?? 0), ...(opts.redisUrl ? [opts.redisUrl] : [])], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
  }
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`))));
  exited.catch(() => undefined);
  await Promise.race([waitPort(opts.port, 15_000), exited]);
  return { name, pid: child.pid!, port: opts.port, stop: () => stopChild(child) };
}

// A block of shell commands, run line by line as a reader would: assignments and `export`s carry over, `ulimit`
// applies to what follows, `switchboard serve` (or `npm start`) is started on ports of the test's own and left
// running (later commands talk to the last one started), `switchboard sub` stays connected in the background, and
// every other command must succeed. Every broker must then stop cleanly on SIGTERM.
import { expect } from 'vitest';
import type { CodeBlock } from '../../scripts/doc-blocks.js';
import { answers, commandLines, freePort, localize, Service, sh, switchboardShim, type Addresses } from './shell.js';

export interface CommandOptions {
  /** The Redis that `redis://host:port` in the block means. */
  redisUrl?: string;
  /** Called with each broker once it answers, before the next line (to check what the command set up). */
  onBroker?: (line: string, a: Addresses, env: NodeJS.ProcessEnv) => Promise<void>;
  /** Called after the last line, with every broker still running, the block's environment, and a way to stop the listeners (Ctrl-C). */
  atEnd?: (brokers: Addresses[], env: NodeJS.ProcessEnv, stopListeners: () => Promise<void>) => Promise<void>;
}

const SERVE = /(^|\s)(switchboard serve\b|npm start\b)/;
const LISTENER = /(^|\s)switchboard (sub|chat)\b/;
/** Lines that only set variables: `A=1 B='x'`, `export A=$(…)` (a command substitution may hold spaces). */
const ASSIGNMENTS = /^(export\s+)?(([A-Z_][A-Z0-9_]*=("[^"]*"|'[^']*'|\S+)\s*)+|[A-Z_][A-Z0-9_]*=\$\(.*\)\s*)$/;

export async function runCommandBlock(block: CodeBlock, options: CommandOptions = {}): Promise<void> {
  const shim = switchboardShim();
  let env: NodeJS.ProcessEnv = { ...process.env, PATH: `${shim.dir}:${process.env.PATH}` };
  const prelude: string[] = [];
  let broker: { service: Service; a: Addresses } | undefined;
  const brokers: Service[] = [];
  const addresses: Addresses[] = [];
  const listeners: Service[] = [];
  const stopAll = async () => {
    for (const l of listeners.splice(0)) await l.stop();
    for (const b of brokers.splice(0)) expect(await b.stop(), `${b.command}: exit status after SIGTERM (stderr: ${b.stderr.slice(-300)})`).toBe(0);
  };
  try {
    for (const line of commandLines(block.text)) {
      const where = `${block.file}:${block.line}: ${line}`;
      if (ASSIGNMENTS.test(line)) {
        const r = await sh(`set -a; ${line}; env -0`, env);
        expect(r.code, `${where}\n${r.stderr}`).toBe(0);
        env = Object.fromEntries(r.stdout.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
        continue;
      }
      if (/^ulimit\b/.test(line)) {
        const r = await sh(line, env);
        expect(r.code, `${where}\n${r.stderr}`).toBe(0);
        prelude.push(line);
        continue;
      }
      const run = (command: string) => [...prelude, command].join('; ');
      const service = (command: string, serviceEnv: NodeJS.ProcessEnv) => new Service(command, serviceEnv, prelude);
      if (SERVE.test(line)) {
        const a: Addresses = { port: await freePort(), tcpPort: await freePort(), ...(options.redisUrl && { redisUrl: options.redisUrl }) };
        const command = localize(line, a)
          .replace(/\bnpm start(?: --)?/, 'switchboard serve')
          .replace(/(SWITCHBOARD_PORT=|--port[ =])\d+/g, `$1${a.port}`)
          .replace(/(SWITCHBOARD_TCP_PORT=|--tcp-port[ =])[1-9]\d*/g, `$1${a.tcpPort}`);
        // The documented defaults (8080, 8000) are this run's ports unless the line says otherwise.
        const started = service(command, { ...env, SWITCHBOARD_PORT: String(a.port), SWITCHBOARD_TCP_PORT: String(a.tcpPort) });
        brokers.push(started);
        if (/SWITCHBOARD_TCP_PORT=0|--tcp-port[ =]0\b/.test(command)) delete a.tcpPort;
        await started.until(() => answers(a.port), `an answer on port ${a.port}`);
        broker = { service: started, a };
        addresses.push(a);
        await options.onBroker?.(line, a, env);
        continue;
      }
      const command = broker ? localize(line, broker.a) : line;
      const lineEnv = broker ? { ...env, SWITCHBOARD_URL: `http://127.0.0.1:${broker.a.port}`, SWITCHBOARD_WS_URL: `ws://127.0.0.1:${broker.a.port}/ws` } : env;
      if (LISTENER.test(line)) {
        expect(broker, `${where}: a listener needs a broker started earlier in the block`).toBeDefined();
        const before = await connections(broker!.a.port);
        const listener = service(command, lineEnv);
        listeners.push(listener);
        await listener.until(async () => (await connections(broker!.a.port)) > before, 'a connection to the broker');
        continue;
      }
      const r = await sh(run(command), lineEnv);
      expect(r.code, `${where}\nstdout: ${r.stdout.slice(-500)}\nstderr: ${r.stderr.slice(-500)}`).toBe(0);
    }
    const stopListeners = async () => {
      for (const l of listeners.splice(0)) await l.stop();
    };
    await options.atEnd?.(addresses, broker ? { ...env, SWITCHBOARD_URL: `http://127.0.0.1:${broker.a.port}`, SWITCHBOARD_WS_URL: `ws://127.0.0.1:${broker.a.port}/ws` } : env, stopListeners);
  } finally {
    try {
      await stopAll();
    } finally {
      for (const s of [...listeners, ...brokers]) await s.stop();
      shim.remove();
    }
  }
}

async function connections(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  return ((await res.json()) as { connections: number }).connections;
}

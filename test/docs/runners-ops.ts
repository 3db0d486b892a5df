// Runners of docs/operations.md, docs/security.md, docs/configuration.md, docs/cluster.md and docs/checker.md:
// commands that start brokers with documented settings (and what those settings do), log lines as they are
// really written, the conformance checker's output, and the auth example end to end.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { SignJWT } from 'jose';
import { expect } from 'vitest';
import WebSocket from 'ws';
import { publishWhenUp, redisCli, requireRedis, TestRedis, TestSentinel } from '../cluster/redis.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { broker, cleanup, linesOf, transcript, type Runner } from './context.js';
import { runCommandBlock } from './commands.js';
import { freePort, localize, ROOT, Service, switchboardShim, type Addresses } from './shell.js';
import { Bindings, expectLines } from './transcript.js';

/** The status of a WebSocket upgrade to `port` from a page of `origin`. */
function upgradeStatus(port: number, origin: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { origin });
    ws.on('open', () => (ws.close(), resolve(101)));
    ws.on('unexpected-response', (_req, res) => (res.resume(), resolve(res.statusCode ?? 0)));
    ws.on('error', () => resolve(0));
  });
}

/** A broker process of this checkout with `args`, and its JSON log lines. */
function serveProcess(args: string[]): Service {
  const shim = switchboardShim();
  cleanup.push(shim.remove);
  const s = new Service(`switchboard serve ${args.join(' ')}`, { ...process.env, PATH: `${shim.dir}:${process.env.PATH}` });
  cleanup.push(() => s.stop());
  return s;
}

const logLines = (s: Service) =>
  s.stdout.split('\n').flatMap((l) => {
    try {
      return [{ text: l, json: JSON.parse(l) as Record<string, unknown> }];
    } catch {
      return [];
    }
  });

/** Each documented line matches one real line, in any order (concurrent closes). */
function expectSomeOrder(expected: string[], actual: string[], b: Bindings, what: string): void {
  const left = [...actual];
  for (const line of expected) {
    const i = left.findIndex((a) => {
      const trial = new Bindings();
      for (const [k, v] of b.values) trial.values.set(k, v);
      return trial.match(line, a);
    });
    if (i < 0) throw new Error(`${what}: no real line is\n  ${line}\namong\n  ${actual.join('\n  ')}`);
    b.match(line, left[i]!);
    left.splice(i, 1);
  }
}

export const OPERATIONS_RUNNERS: Record<string, Runner> = {
  'port-in-use': {
    async run([block]) {
      const holder = createServer();
      holder.listen(0, '127.0.0.1');
      await once(holder, 'listening');
      cleanup.push(() => holder.close());
      const port = (holder.address() as { port: number }).port;
      const s = serveProcess(['--port', '0', '--tcp-port', String(port)]);
      expect(await s.exited).toBe(1);
      expectLines(linesOf(block!).map((l) => l.replaceAll('8000', String(port))), s.stderr.trim().split('\n'), new Bindings(), 'serve');
    },
  },

  'refusal-log': {
    // --max-connections-per-ip 2 and a third nc from the same host.
    async run([block]) {
      const tcp = await freePort();
      const s = serveProcess(['--port', '0', '--tcp-port', String(tcp), '--max-connections-per-ip', '2']);
      await s.until(() => s.stdout.includes('tcp chat listening'), 'the TCP port');
      const sockets = [];
      for (let i = 0; i < 3; i++) {
        const socket = connect(tcp, '127.0.0.1');
        socket.on('error', () => {});
        cleanup.push(() => socket.destroy());
        sockets.push(socket);
        await once(socket, 'connect');
      }
      await s.until(() => s.stdout.includes('connections refused'), 'the refusal line');
      const line = logLines(s).find((l) => String(l.json.msg).startsWith('connections refused'))!;
      expectLines(linesOf(block!), [line.text], new Bindings(), 'the refusal log line');
    },
  },

  'shutdown-log': {
    // A TCP user and a WebSocket client are connected when SIGTERM comes.
    async run([block]) {
      const tcp = await freePort();
      const s = serveProcess(['--port', '0', '--tcp-port', String(tcp)]);
      await s.until(() => s.stdout.includes('tcp chat listening'), 'the TCP port');
      const port = Number(/"port":(\d+)/.exec(s.stdout)![1]);
      const line = connect(tcp, '127.0.0.1');
      line.on('error', () => {});
      cleanup.push(() => line.destroy());
      await once(line, 'data');
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      await once(ws, 'message');
      cleanup.push(() => ws.terminate());
      // Both connections logged (a `connect` line may follow the client's hello): the shutdown's lines come after.
      await s.until(() => (s.stdout.match(/"msg":"connect"/g) ?? []).length >= 2, 'both connect lines');
      await s.stop();
      const all = s.stdout.split('\n').filter(Boolean);
      const lines = all.slice(all.findIndex((l) => l.includes('"msg":"shutdown requested"')));
      const expected = linesOf(block!);
      const b = new Bindings();
      expectLines([expected[0]!, expected[1]!], lines.slice(0, 2), b, 'the shutdown log');
      // The closes are logged as each socket finishes its close handshake: in any order, the last one maybe after "stopped".
      expectSomeOrder(expected.slice(2), lines.slice(2), b, 'the closes');
      expect(lines, `the log from "shutdown requested" on:\n${lines.join('\n')}`).toHaveLength(expected.length);
    },
  },

  'behind-proxy': {
    async run([block]) {
      await runCommandBlock(block!, {
        onBroker: async (_line, a) => {
          expect(await upgradeStatus(a.port, 'https://chat.example.com')).toBe(101);
          expect(await upgradeStatus(a.port, 'https://elsewhere.example')).toBe(403);
        },
      });
    },
  },

  'pino-pretty': {
    // The pipe of the first block; its output, up to a SIGTERM, is the second.
    async run([command, output]) {
      expect(linesOf(command!)).toEqual(['switchboard serve | npx pino-pretty']);
      const shim = switchboardShim();
      cleanup.push(shim.remove);
      const [port, tcp] = [await freePort(), await freePort()];
      const env = { ...process.env, PATH: `${shim.dir}:${process.env.PATH}`, SWITCHBOARD_PORT: String(port), SWITCHBOARD_TCP_PORT: String(tcp) };
      const serve = spawn('switchboard', ['serve'], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      const pretty = spawn('npx', ['pino-pretty'], { env, cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
      cleanup.push(() => serve.kill());
      serve.stdout.pipe(pretty.stdin);
      let out = '';
      pretty.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      const deadline = Date.now() + 20_000;
      while (!out.includes('tcp chat listening') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      serve.kill('SIGTERM');
      await once(pretty, 'close');
      const shown = linesOf(output!);
      const real = out.replace(/\n$/, '').split('\n');
      expectLines(shown, real.slice(0, shown.length), new Bindings(), 'pino-pretty');
    },
  },

  'load-test-limits': {
    async run([block]) {
      await runCommandBlock(block!);
    },
  },

  healthz: {
    async run([block]) {
      await transcript(block!, await broker());
    },
  },

  'metrics-grep': {
    // The command works, and every switchboard_ metric it shows is in the metrics table above it.
    async run([block]) {
      const b = await broker();
      const shim = switchboardShim();
      cleanup.push(shim.remove);
      const { sh } = await import('./shell.js');
      const r = await sh(localize(linesOf(block!)[0]!, b), process.env);
      expect(r.code).toBe(0);
      const names = new Set(r.stdout.split('\n').filter(Boolean).map((l) => l.replace(/[{ ].*$/, '').replace(/_(bucket|sum|count)$/, '')));
      expect(names.size).toBeGreaterThan(10);
      const table = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
      expect([...names].filter((n) => !table.includes(`\`${n}`))).toEqual([]);
    },
  },

  'origins-serve': {
    async run([block]) {
      await runCommandBlock(block!, {
        onBroker: async (line, a) => {
          const any = line.includes("'*'");
          expect(await upgradeStatus(a.port, 'https://app.example.com')).toBe(101);
          expect(await upgradeStatus(a.port, 'https://evil.example')).toBe(any ? 101 : 403);
        },
      });
    },
  },

  'auth-example': {
    // The commands (a token made with jose, a subscriber holding it), then the refusals shown under them.
    async run([commands, refusals]) {
      await runCommandBlock(commands!, {
        atEnd: async ([a], env, stopListeners) => {
          expect(env.TOKEN).toMatch(/^ey/);
          await stopListeners(); // Ctrl-C on the subscriber: alice's name is free again
          await transcript(refusals!, a!, new Bindings(), env);
        },
      });
    },
  },

  'tcp-auth': {
    async run([block]) {
      const secret = 'a-secret-long-enough-for-hs256-tokens';
      const b = await broker({ authSecret: secret });
      const jwt = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(secret));
      const [sent, ack, greeting] = linesOf(block!);
      const socket = connect(b.tcpPort, '127.0.0.1');
      cleanup.push(() => socket.destroy());
      await once(socket, 'connect');
      let text = '';
      socket.setEncoding('utf8').on('data', (c: string) => (text += c));
      socket.write(sent!.replace(/^→ /, '').replace('<jwt>', jwt) + '\n');
      const deadline = Date.now() + 5000;
      while (text.split('\n').length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const [first, second] = text.split('\n');
      expectLines([ack!.replace(/^← /, '')], [first!], new Bindings(), 'the ack');
      expect(greeting).toBe('← (the usual greeting; the client is now in the room as alice)');
      expect(second).toMatch(/^I am here: .* You are alice from 127\.0\.0\.1:\d+ \(id c\d+\)\.$/);
    },
  },

  'configuration-examples': {
    // Five brokers started one after another (each a Node process loading the whole broker) and stopped: 2 s on a
    // quiet machine, more than 30 s beside other suites.
    timeout: 90_000,
    async run([block]) {
      await runCommandBlock(block!, {
        onBroker: async (line, a, env) => {
          if (!line.includes('--slow-consumer')) return;
          // The API key the block exported is the one the broker asks for.
          expect((await fetch(`http://127.0.0.1:${a.port}/api/clients`)).status).toBe(401);
          expect((await fetch(`http://127.0.0.1:${a.port}/api/clients`, { headers: { authorization: `Bearer ${env.SWITCHBOARD_API_KEY}` } })).status).toBe(200);
        },
      });
    },
  },

  'cluster-two-nodes': {
    // Two nodes on one Redis are one broker: a subscriber on one hears a publish on the other.
    timeout: 60_000,
    async run([block], ctx) {
      if (!requireRedis('docs/cluster.md two nodes')) return ctx.skip('redis-server is missing (apt-get install -y redis-server)');
      const redis = await TestRedis.start();
      cleanup.push(() => redis.stop());
      await runCommandBlock(block!, {
        redisUrl: redis.url,
        atEnd: async ([a, b]: Addresses[]) => {
          const sub = new WebSocket(`ws://127.0.0.1:${a!.port}/ws/news`);
          cleanup.push(() => sub.terminate());
          const frames: Record<string, unknown>[] = [];
          sub.on('message', (d) => frames.push(JSON.parse(String(d))));
          await once(sub, 'open');
          const deadline = Date.now() + 10_000;
          while (!frames.some((f) => f.op === 'hello') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
          const res = await fetch(`http://127.0.0.1:${b!.port}/api/publish`, { method: 'POST', body: JSON.stringify({ topic: 'news', data: 'from the other node' }) });
          expect(res.status).toBe(200);
          while (!frames.some((f) => f.op === 'msg') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
          expect(frames.find((f) => f.op === 'msg')).toMatchObject({ topic: 'news', data: 'from the other node' });
        },
      });
    },
  },

  'cluster-unix-socket': {
    // A node on a Redis's Unix socket publishes through it: the message is numbered by the publish script.
    timeout: 60_000,
    async run([block], ctx) {
      if (!requireRedis('docs/cluster.md Unix socket')) return ctx.skip('redis-server is missing (apt-get install -y redis-server)');
      const redis = await TestRedis.start({ unixSocket: true });
      cleanup.push(() => redis.stop());
      await runCommandBlock(block!, {
        redisUrl: redis.socketUrl,
        atEnd: async ([a]: Addresses[]) => {
          const res = await publishWhenUp(a!.port, { topic: 'news', data: 'through the socket' });
          expect(res.status).toBe(200);
          expect(await res.json()).toMatchObject({ seq: 1 });
          const clients = await redisCli(redis.port, 'CLIENT', 'LIST');
          expect(clients).toContain(`addr=${redis.socketPath}:0`);
          expect(clients).not.toMatch(/addr=127\.0\.0\.1:\d+ laddr=\S+ fd=\d+ name=sb-/);
        },
      });
    },
  },

  'cluster-sentinel': {
    // A node through Sentinel publishes on the master it names.
    timeout: 60_000,
    async run([block], ctx) {
      if (!requireRedis('docs/cluster.md Sentinel')) return ctx.skip('redis-server is missing (apt-get install -y redis-server)');
      const sentinel = await TestSentinel.start();
      cleanup.push(() => sentinel.stop());
      await runCommandBlock(block!, {
        redisUrl: sentinel.url,
        atEnd: async ([a]: Addresses[]) => {
          const res = await publishWhenUp(a!.port, { topic: 'news', data: 'through Sentinel' });
          expect(res.status).toBe(200);
          expect(await res.json()).toMatchObject({ seq: 1 });
          // On the master Sentinel names.
          expect(await redisCli(sentinel.master.port, 'HGET', KEYS.meta('news'), 'seq')).toBe('1');
        },
      });
    },
  },

  'checker-run': {
    // `switchboard serve [--mqtt-port 1883] &`, then the check as shown: the same kinds of commands, every scenario
    // conforming, and the messages received counted by transport.
    timeout: 90_000,
    async run([block]) {
      const [serve, check, ...output] = linesOf(block!);
      const served = /^\$ switchboard serve( --mqtt-port 1883)? &$/.exec(serve!);
      expect(served, serve).not.toBeNull();
      const port = await freePort();
      const mqttPort = await freePort();
      const s = serveProcess(['--port', String(port), '--tcp-port', String(await freePort()), ...(served![1] ? ['--mqtt-port', String(mqttPort)] : [])]);
      await s.until(() => s.stdout.includes('switchboard listening'), 'the broker');
      const { sh } = await import('./shell.js');
      const shim = switchboardShim();
      cleanup.push(shim.remove);
      const command = localize(check!.slice(2), { port }).replace(/\bmqtt:\/\/127\.0\.0\.1:1883\b/g, `mqtt://127.0.0.1:${mqttPort}`);
      const r = await sh(command, { ...process.env, PATH: `${shim.dir}:${process.env.PATH}` }, 80_000);
      // On a difference the checker prints its counterexample (seed and path to replay it) on stdout.
      expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
      const [first, second, third] = r.stdout.trim().split('\n');
      const seedless = (l: string) => l.replace(/\(seed -?\d+\)/, '(seed S)');
      expect(seedless(first!)).toBe(seedless(output[0]!));
      const kinds = (l: string, head: RegExp) => new Set([...l.replace(head, '').matchAll(/([a-z→ ]+?) \d+(?:, |$)/g)].map((m) => m[1]!.trim()));
      expect(second).toMatch(/^\d+ commands: ([a-z ]+ \d+, )*[a-z ]+ \d+$/);
      const commands = /^\d+ commands: /;
      expect([...kinds(second!, commands)].filter((k) => !kinds(output[1]!, commands).has(k))).toEqual([]);
      // Which transports' messages reached which: the same pairs as shown, or fewer (a random run).
      expect(third).toMatch(/^\d+ messages received as the model said: ([a-z]+→[a-z]+ \d+, )*[a-z]+→[a-z]+ \d+$/);
      const messages = /^\d+ messages received as the model said: /;
      expect([...kinds(third!, messages)].filter((k) => !kinds(output[2]!, messages).has(k))).toEqual([]);
    },
  },
};


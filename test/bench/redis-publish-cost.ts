// Redis's own cost per published message, by how publishes reach it: a bare `XADD` + two `PUBLISH`es per message
// (the floor: what any history-keeping broker must do), and the cluster engine's PUBLISH_BATCH script carrying 1, 4,
// 16 or 64 messages per call (what one event-loop turn batches). A private redis-server (empty, no persistence) with
// one subscriber on the topic's channel (one node that hears it); Redis CPU per message from INFO commandstats
// (usec inside the command) and from /proc (the whole process: reading commands, writing to the subscriber).
//   npx tsx test/bench/redis-publish-cost.ts [--messages 20000] [--port 6390] [--old-scripts <path of an older scripts.ts>]
// With --old-scripts, that file's one-message `PUBLISH` script (before batching) is measured too.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { cpuUs } from './servers.js';
import { PUBLISH_BATCH } from '../../src/engine/redis/scripts.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { publishChannels } from '../../src/engine/redis/interest.js';

const { values: flags } = parseArgs({ options: { messages: { type: 'string' }, port: { type: 'string' }, 'old-scripts': { type: 'string' } } });
const N = Number(flags.messages ?? 20_000);
const PORT = Number(flags.port ?? 6390);
const TOPIC = 'bench/cost';
const DATA = JSON.stringify('x'.repeat(64));
const PREFIX = 'mabc123\nws\n127.0.0.1:5000\n\n';
const HEAD = `{"op":"msg","topic":${JSON.stringify(TOPIC)},"seq":`;
const [CH_T, CH_F] = publishChannels(TOPIC);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-cost-'));
  const server = spawn('redis-server', ['--port', String(PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const cmd = new Redis({ port: PORT, lazyConnect: true, retryStrategy: (n) => (n > 50 ? null : 100) });
  const sub = new Redis({ port: PORT, lazyConnect: true, retryStrategy: (n) => (n > 50 ? null : 100) });
  try {
    await cmd.connect();
    await sub.connect();
    let heard = 0;
    sub.on('message', (_c: string, payload: string) => (heard += payload.split('\x1e').length));
    await sub.subscribe(CH_T);
    const sha = (await cmd.script('LOAD', PUBLISH_BATCH)) as string;
    const rows: string[] = [];
    const measure = async (name: string, perCall: number, send: (from: number, n: number) => Promise<unknown>) => {
      await cmd.flushall();
      await send(0, perCall); // warm
      heard = 0;
      await cmd.config('RESETSTAT');
      const cpu0 = cpuUs(server.pid!);
      const t0 = performance.now();
      for (let i = 0; i < N; i += perCall * 8) {
        // 8 calls in flight, as turns overlap on a busy node
        await Promise.all(Array.from({ length: 8 }, (_, k) => send(i + k * perCall, perCall)));
      }
      while (heard < N) await new Promise((r) => setTimeout(r, 5));
      const cpu = cpuUs(server.pid!) - cpu0;
      const ms = performance.now() - t0;
      const stats = await cmd.info('commandstats');
      const usec = [...stats.matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+)/g)].map(([, c, calls, us]) => ({ c: c!, calls: Number(calls), us: Number(us) }));
      const top = usec.filter((u) => ['evalsha', 'xadd', 'publish'].includes(u.c)).map((u) => `${u.c} ${u.calls} calls ${(u.us / u.calls).toFixed(2)} µs/call`).join(', ');
      const inside = usec.filter((u) => ['evalsha', 'xadd', 'publish', 'rpush', 'hincrby'].includes(u.c) && (u.c === 'evalsha' || !usec.some((x) => x.c === 'evalsha'))).reduce((a, u) => a + u.us, 0);
      rows.push(`| ${name} | ${perCall} | ${(inside / N).toFixed(2)} | ${(cpu / N).toFixed(2)} | ${Math.round((N / ms) * 1000)} | ${top} |`);
    };
    // The floor: XADD (capped like --history 100) and PUBLISH on the two channels, pipelined.
    for (const per of [1, 4, 16]) {
      await measure('bare XADD + 2 PUBLISH', per, (from, n) => {
        const p = cmd.pipeline();
        for (let i = from; i < from + n; i++) {
          const entry = `${PREFIX}${HEAD}${i + 1},"epoch":"e","ts":1,"data":${DATA}}`;
          p.xadd(KEYS.log(TOPIC), 'MAXLEN', '~', '100', '*', 'm', entry).publish(CH_T, entry).publish(CH_F, entry);
        }
        return p.exec();
      });
    }
    for (const per of [1, 4, 16, 64]) {
      await measure('PUBLISH_BATCH script', per, (from, n) => {
        const keys: string[] = [];
        const args = ['100', String(4 << 20), '60000'];
        for (let i = from; i < from + n; i++) {
          keys.push(KEYS.meta(TOPIC), KEYS.log(TOPIC), KEYS.sizes(TOPIC));
          args.push('L.n1', HEAD, `,"ts":1,"data":${DATA}}`, PREFIX, CH_T, CH_F, '0');
        }
        return cmd.evalsha(sha, keys.length, ...keys, ...args);
      });
    }
    if (flags['old-scripts']) {
      const old = ((await import(flags['old-scripts'])) as { PUBLISH: string }).PUBLISH;
      const oldSha = (await cmd.script('LOAD', old)) as string;
      await measure('one-message PUBLISH script (before)', 1, (from, n) => {
        const p = cmd.pipeline();
        for (let i = from; i < from + n; i++) {
          p.evalsha(oldSha, 3, KEYS.meta(TOPIC), KEYS.log(TOPIC), KEYS.sizes(TOPIC), 'L.n1', HEAD, `,"ts":1,"data":${DATA}}`, '100', CH_T, PREFIX, String(4 << 20), CH_F);
        }
        return p.exec();
      });
    }
    console.log(`Redis per published message, ${N} messages, one subscriber on the topic's channel\n`);
    console.log('| how | messages per call | µs inside commands (commandstats) | µs redis-server CPU (/proc) | msg/s | commands |');
    console.log('|---|---:|---:|---:|---:|---|');
    for (const r of rows) console.log(r);
  } finally {
    cmd.disconnect();
    sub.disconnect();
    server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

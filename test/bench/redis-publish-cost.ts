// Redis's own cost per published message, by how publishes reach it: a bare `XADD` + two `PUBLISH`es per message
// (the floor: what any history-keeping broker must do), and the cluster engine's PUBLISH_BATCH script carrying 1, 4,
// 16 or 64 messages per call (what one event-loop turn batches). A private redis-server (empty, no persistence) with
// one subscriber on the topic's channel (one node that hears it); Redis CPU per message from INFO commandstats
// (usec inside the command) and from /proc (the whole process: reading commands, writing to the subscriber).
//   npx tsx test/bench/redis-publish-cost.ts [--messages 20000] [--port 6390] [--old-scripts <path of an older scripts.ts>]
// With --paced <calls/s>, one call at a time at that rate (the three-node bench's publisher: 500 calls of 4 a second),
// so each call wakes Redis on its own as on a node that keeps up; the floor of one call per turn gets its own row
// (one bare PUBLISH of the call's entries: no history, no numbering).
// With --blob test/bench/prototypes/publish-blob.lua, a prototype of another design is measured beside (not the engine's).
// With --old-scripts, that file's one-message `PUBLISH` script (before batching) is measured too. With --callgrind,
// redis-server runs under valgrind's callgrind and each row also gets Redis's instructions per message (load-proof).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { cpuUs } from './servers.js';
import { PUBLISH_BATCH } from '../../src/engine/redis/publish-script.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { publishChannels } from '../../src/engine/redis/interest.js';

const { values: flags } = parseArgs({ options: { info: { type: 'boolean' }, messages: { type: 'string' }, port: { type: 'string' }, 'old-scripts': { type: 'string' }, callgrind: { type: 'boolean' }, only: { type: 'string' }, per: { type: 'string' }, lua: { type: 'string' }, paced: { type: 'string' }, blob: { type: 'string' } } });
/** `--only batch` measures the PUBLISH_BATCH rows alone; `--per 1,4` the batch sizes (default 1,4,16,64). */
const ONLY = flags.only;
const PERS = (flags.per ?? '1,4,16,64').split(',').map(Number);
const N = Number(flags.messages ?? 20_000);
/** Calls per second, one at a time (0: eight in flight, as fast as Redis answers). */
const PACED = Number(flags.paced ?? 0);
const PORT = Number(flags.port ?? 6390);
const TOPIC = 'bench/cost';
const DATA = JSON.stringify('x'.repeat(64));
const PREFIX = 'mabc123\nws\n127.0.0.1:5000\n\n';
const HEAD = `{"op":"msg","topic":${JSON.stringify(TOPIC)},"seq":`;
const [CH_T, CH_F] = publishChannels(TOPIC);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-cost-'));
  const redisArgs = ['--port', String(PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  const server = flags.callgrind
    ? spawn('valgrind', ['--tool=callgrind', '--compress-strings=no', '--compress-pos=no', `--callgrind-out-file=${dir}/cg.%p`, 'redis-server', ...redisArgs], { stdio: 'ignore' })
    : spawn('redis-server', redisArgs, { stdio: 'ignore' });
  /** Instructions Redis ran since the last call (callgrind: dump, which zeroes the counters, and read its totals). */
  let dumps = 0;
  const instructions = (): number => {
    if (!flags.callgrind) return 0;
    execFileSync('callgrind_control', ['-d', String(server.pid)], { stdio: 'ignore' });
    dumps++;
    const file = readdirSync(dir).find((f) => f.startsWith('cg.') && f.endsWith(`.${dumps}`));
    const m = file ? /^totals: (\d+)/m.exec(readFileSync(`${dir}/${file}`, 'utf8')) : null;
    return m ? Number(m[1]) : NaN;
  };
  const cmd = new Redis({ port: PORT, lazyConnect: true, retryStrategy: (n) => (n > 50 ? null : 100) });
  const sub = new Redis({ port: PORT, lazyConnect: true, retryStrategy: (n) => (n > 50 ? null : 100) });
  try {
    // Up once it accepts connections (under valgrind that takes seconds).
    for (let i = 0; ; i++) {
      const up = await new Promise<boolean>((r) => connect(PORT, '127.0.0.1').once('connect', function (this: Socket) { this.destroy(); r(true); }).once('error', () => r(false)));
      if (up) break;
      if (i > 300) throw new Error('redis-server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    await cmd.connect();
    await sub.connect();
    let heard = 0;
    sub.on('message', (_c: string, payload: string) => (heard += payload.split('\x1e').length));
    await sub.subscribe(CH_T);
    const sha = (await cmd.script('LOAD', flags.lua ? readFileSync(flags.lua, 'utf8') : PUBLISH_BATCH)) as string;
    const rows: string[] = [];
    const measure = async (name: string, perCall: number, send: (from: number, n: number) => Promise<unknown>) => {
      await cmd.flushall();
      await send(0, perCall); // warm
      heard = 0;
      await cmd.config('RESETSTAT');
      instructions();
      const cpu0 = cpuUs(server.pid!);
      const own0 = process.cpuUsage();
      const t0 = performance.now();
      let sent = 0;
      if (PACED > 0) {
        // One call at a time, each at its slot of the schedule (late ones go at once, none skipped).
        for (let i = 0, k = 0; i < N; i += perCall, sent += perCall, k++) {
          const wait = t0 + (k * 1000) / PACED - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          await send(i, perCall);
        }
      } else {
        for (let i = 0; i < N; i += perCall * 8, sent += perCall * 8) {
          // 8 calls in flight, as turns overlap on a busy node
          await Promise.all(Array.from({ length: 8 }, (_, k) => send(i + k * perCall, perCall)));
        }
      }
      while (heard < sent) await new Promise((r) => setTimeout(r, 5));
      const cpu = cpuUs(server.pid!) - cpu0;
      const ins = instructions();
      const own = process.cpuUsage(own0);
      const ms = performance.now() - t0;
      const stats = await cmd.info('commandstats');
      const usec = [...stats.matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+)/g)].map(([, c, calls, us]) => ({ c: c!, calls: Number(calls), us: Number(us) }));
      const top = usec.filter((u) => ['evalsha', 'xadd', 'publish'].includes(u.c)).map((u) => `${u.c} ${u.calls} calls ${(u.us / u.calls).toFixed(2)} µs/call`).join(', ');
      const inside = usec.filter((u) => ['evalsha', 'xadd', 'publish', 'rpush', 'hincrby'].includes(u.c) && (u.c === 'evalsha' || !usec.some((x) => x.c === 'evalsha'))).reduce((a, u) => a + u.us, 0);
      rows.push(`| ${name} | ${perCall} | ${(inside / sent).toFixed(2)} | ${(cpu / sent).toFixed(2)} | ${((own.user + own.system) / sent).toFixed(2)} | ${flags.callgrind ? Math.round(ins / sent).toLocaleString('en-US') : '–'} | ${Math.round((sent / ms) * 1000)} | ${top} |`);
    };
    // The floor of one call per turn: a bare PUBLISH carrying the call's entries (no history, no numbering).
    for (const per of PACED > 0 && ONLY !== 'batch' ? PERS : []) {
      await measure('bare PUBLISH of the entries, one per call', per, (from, n) => {
        const entries: string[] = [];
        for (let i = from; i < from + n; i++) entries.push(`${PREFIX}${HEAD}${i + 1},"epoch":"e","ts":1,"data":${DATA}}`);
        return cmd.publish(CH_T, entries.join('\x1e'));
      });
    }
    // The floor: XADD (capped like --history 100) and PUBLISH on the two channels, pipelined.
    for (const per of ONLY === 'batch' ? [] : PACED > 0 ? PERS : [1, 4, 16]) {
      await measure('bare XADD + 2 PUBLISH', per, (from, n) => {
        const p = cmd.pipeline();
        for (let i = from; i < from + n; i++) {
          const entry = `${PREFIX}${HEAD}${i + 1},"epoch":"e","ts":1,"data":${DATA}}`;
          p.xadd(KEYS.log(TOPIC), 'MAXLEN', '~', '100', '*', 'm', entry).publish(CH_T, entry).publish(CH_F, entry);
        }
        return p.exec();
      });
    }
    for (const per of PERS) {
      await measure('PUBLISH_BATCH script', per, (from, n) => {
        // One topic: its keys and arguments once, then three arguments per message (publish-script.ts).
        // The lineage from its key, as the engine does on one Redis (--info: from INFO every call, as on a Redis Cluster).
        const keys = flags.info ? [KEYS.meta(TOPIC), KEYS.log(TOPIC)] : [KEYS.meta(TOPIC), KEYS.log(TOPIC), KEYS.lineage];
        const args = ['100', String(4 << 20), '60000', '1', 'L.n1', HEAD, CH_T, CH_F];
        for (let i = from; i < from + n; i++) args.push('1', `,"ts":1,"data":${DATA}}`, PREFIX);
        args.push(flags.info ? '' : 'trust');
        return cmd.evalsha(sha, keys.length, ...keys, ...args);
      });
    }
    if (flags.blob) {
      // A prototype of another design (--blob <file.lua>, not the engine's): a turn's entries of a topic as one
      // argument, one history element and one bus payload per call (test/bench/prototypes/publish-blob.lua; docs/benchmarks.md).
      const blobSha = (await cmd.script('LOAD', readFileSync(flags.blob, 'utf8'))) as string;
      for (const per of PERS) {
        await measure('prototype: one pre-joined argument per call', per, (from, n) => {
          const entries: string[] = [];
          let bytes = 0;
          for (let i = from; i < from + n; i++) {
            const frame = `{"op":"msg","topic":${JSON.stringify(TOPIC)},"ts":1,"data":${DATA}}`;
            entries.push(`${PREFIX}${frame}`);
            bytes += frame.length;
          }
          return cmd.evalsha(blobSha, 2, KEYS.meta(TOPIC), KEYS.log(TOPIC), '100', String(4 << 20), 'L.n1', CH_T, CH_F, String(n), String(bytes), entries.join('\x1e'));
        });
      }
    }
    if (flags['old-scripts']) {
      const old = ((await import(flags['old-scripts'])) as { PUBLISH: string }).PUBLISH;
      const oldSha = (await cmd.script('LOAD', old)) as string;
      const args = (i: number) => [KEYS.meta(TOPIC), KEYS.log(TOPIC), KEYS.log(TOPIC).replace(':hist:', ':hsizes:'), `L.n${i}`, HEAD, `,"ts":1,"data":${DATA}}`, '100', CH_T, PREFIX, String(4 << 20), CH_F];
      // Before batching: one EVALSHA per message, each written on its own (as a node sent a turn's publishes).
      await measure('one-message script, one write each (before)', 4, (from, n) => Promise.all(Array.from({ length: n }, (_, k) => cmd.evalsha(oldSha, 3, ...args(from + k)))));
      // (a) the same calls of a turn in one pipeline (one write).
      for (const per of [4, 16]) {
        await measure('(a) one-message script, pipelined per turn', per, (from, n) => {
          const p = cmd.pipeline();
          for (let i = from; i < from + n; i++) p.evalsha(oldSha, 3, ...args(i));
          return p.exec();
        });
      }
    }
    console.log(`Redis per published message, ${N} messages, one subscriber on the topic's channel${PACED > 0 ? `, one call at a time at ${PACED} calls/s` : ', eight calls in flight'}\n`);
    console.log('| how | messages per call (or write) | µs inside commands (commandstats) | µs redis-server CPU (/proc) | µs client CPU (this process: ioredis, subscriber) | Redis instructions per message (callgrind) | msg/s | commands |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---|');
    for (const r of rows) console.log(r);
  } finally {
    cmd.disconnect();
    sub.disconnect();
    server.kill('SIGKILL');
    if (flags.callgrind) console.log(`callgrind dumps (one per row, in order) kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

// The measuring step of the in-process micro benches (ingest-micro.ts, publisher-micro.ts): the load child is told to
// send `count` publishes, and this process's CPU and the wall time are taken until it says it is done. Under callgrind
// (`--instr-atstart=no`) instructions are counted only inside the round, when `callgrind` is set.
import { execFileSync, type ChildProcess } from 'node:child_process';

export async function measureRound<Done>(load: ChildProcess, done: () => Promise<Done>, count: number, callgrind: boolean): Promise<{ result: Done; cpuUs: number; ms: number }> {
  if (callgrind) execFileSync('callgrind_control', ['--instr=on', String(process.pid)]);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const finished = done();
  load.send({ type: 'go', count });
  const result = await finished;
  const cpu = process.cpuUsage(cpu0);
  const ms = performance.now() - t0;
  if (callgrind) execFileSync('callgrind_control', ['--instr=off', String(process.pid)]);
  return { result, cpuUs: cpu.user + cpu.system, ms };
}

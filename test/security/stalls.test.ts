// The broker's own stalls are not charged to its clients (issue 19, item 2). A broker in a child process is stopped
// (SIGSTOP: a GC pause, a CPU hog, a VM steal look the same from a socket) for 2 s while an honest client keeps
// publishing at half of --rate, and a flooder at three times it. When the loop resumes, both backlogs are read at
// once: the honest client gets no rate_limited and stays connected; the flooder is still closed with 1008.
// Before: the bucket counted frames when they were read, with its refill capped at the burst, so the honest client
// was refused and closed for the broker's stall. (--rate 20 --rate-burst 10 keep the stall short.) The broker starts
// with no connection, its stall timer at the coarse period; the clients' arrival puts it at the fine one (stalls.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnBroker, type ChildBroker } from '../helpers/child-broker.js';
import { TestClient } from '../helpers/client.js';
import { until } from '../helpers/waits.js';

const STALL_MS = 2000;
let broker: ChildBroker;
beforeAll(async () => {
  broker = await spawnBroker(['--rate', '20', '--rate-burst', '10', '--rate-strikes', '5']);
});
afterAll(() => {
  broker.child.kill('SIGCONT');
  broker.child.kill('SIGKILL');
});

/** Publishes to its own topic every `everyMs` until stopped; `sent` is how many so far, `stop` returns the total. */
function pace(c: TestClient, topic: string, everyMs: number): { sent: () => number; stop: () => number } {
  let n = 0;
  const timer = setInterval(() => c.send({ op: 'pub', topic, data: n++ }), everyMs);
  return { sent: () => n, stop: () => (clearInterval(timer), n) };
}

describe('a stalled broker', () => {
  it('does not rate-limit or close a client for frames that queued while it was stopped; a flooder is still closed', async () => {
    const url = `ws://127.0.0.1:${broker.port}/ws`;
    const honest = await TestClient.connect(url);
    const flooder = await TestClient.connect(url);
    const honestPace = pace(honest, 'honest', 100); // 10/s: half of --rate 20
    await honest.request({ op: 'ping' }); // the broker is reading it
    const flooderPace = pace(flooder, 'flood', 1000 / 60); // 60/s: three times --rate
    process.kill(broker.child.pid!, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, STALL_MS)); // the stall itself: the broker reads nothing meanwhile
    process.kill(broker.child.pid!, 'SIGCONT');
    const flooderClose = await Promise.race([flooder.closed, new Promise<{ code: string }>((r) => setTimeout(() => r({ code: 'still open 5 s after the stall' }), 5000))]);
    flooderPace.stop();
    // The honest client goes on at its pace after the stall until it has sent more than the burst and five more than
    // it had (this process's timers run late on a loaded machine: counted, not timed), then a barrier: all of it is in.
    const atResume = honestPace.sent();
    await until(() => honestPace.sent() > Math.max(20, atResume + 5), 'the honest client paced on after the stall');
    const sent = honestPace.stop();
    const pong = await honest.request({ op: 'ping' });
    expect(pong).toMatchObject({ op: 'pong' });
    expect(honest.all.filter((f) => f.op === 'error')).toEqual([]);
    expect(sent).toBeGreaterThan(20); // more than the burst queued during the stall
    expect(flooderClose.code).toBe(1008);
    expect(flooder.all.filter((f) => f.op === 'error' && f.code === 'rate_limited').length).toBeGreaterThan(0);
    honest.close();
  });
});

// Graceful shutdown under load, in a real child process: publishers keep sending while SIGTERM arrives.
// Every message acknowledged to a publisher reaches every live subscriber before its 1001 close; the process exits 0.
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { spawnBroker } from '../helpers/child-broker.js';
import { until } from '../helpers/waits.js';

const PUBLISHERS = 3;
const SUBSCRIBERS = 5;

describe('SIGTERM while publishers are sending', () => {
  it('every acknowledged message reaches every subscriber before its 1001 close', async () => {
    const { child, port } = await spawnBroker(['--rate', '0']);
    const exited = once(child, 'exit');
    const url = `ws://127.0.0.1:${port}/ws`;
    const subs = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => TestClient.connect(`${url}/load`)));
    const pubs = await Promise.all(Array.from({ length: PUBLISHERS }, () => TestClient.connect(url)));

    const acked: number[] = [];
    let sent = 0;
    // Each publisher keeps a window of requests in flight until its connection closes.
    const publishing = pubs.map(async (p, k) => {
      let open = true;
      void p.closed.then(() => (open = false));
      for (let i = 0; open; i++) {
        const id = `p${k}-${i}`;
        p.send({ op: 'pub', topic: 'load', data: id, id });
        sent++;
        if (i % 16 === 15) {
          const reply = await Promise.race([p.next((f) => f.id === id, 10_000).catch(() => null), p.closed.then(() => null)]);
          if (!reply) break;
        }
      }
      await p.closed;
      for (const f of p.all) if (f.op === 'ack') acked.push(f.seq as number);
    });

    // Under load: every publisher's messages acknowledged, and reaching the subscribers, when SIGTERM comes.
    const acks = (p: TestClient) => p.all.filter((f) => f.op === 'ack').length;
    await until(() => pubs.every((p) => acks(p) >= 64) && subs.every((s) => s.all.length > 64), 'the load under way');
    child.kill('SIGTERM');
    const closes = await Promise.all(subs.map((s) => s.closed));
    await Promise.all(publishing);
    const [code] = await exited;

    expect(closes.map((c) => c.code)).toEqual(Array(SUBSCRIBERS).fill(1001));
    expect(code).toBe(0);
    expect(acked.length).toBeGreaterThan(20); // the load was real (hundreds on an idle machine)
    console.log(`shutdown under load: ${sent} pubs sent, ${acked.length} acknowledged before the close`);
    for (const s of subs) {
      const got = new Set(s.all.filter((f) => f.op === 'msg').map((f) => f.seq as number));
      const missing = acked.filter((seq) => !got.has(seq));
      expect(missing).toEqual([]);
      const seqs = s.all.filter((f) => f.op === 'msg').map((f) => f.seq as number);
      expect(seqs.every((v, i) => i === 0 || v > seqs[i - 1]!)).toBe(true);
    }
  }, 30_000);
});

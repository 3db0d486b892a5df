// Victim: an honest neighbour that measures what an attack costs it. A publisher paced at one message every
// `everyMs` to a topic of its own, and a subscriber of that topic timing each message from publish to receipt.
import { TestClient, type Frame } from './client.js';

export interface VictimReport {
  sent: number;
  received: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export class Victim {
  private sentAt: number[] = [];
  private latencies = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly pub: TestClient,
    private readonly sub: TestClient,
    topic: string,
  ) {
    sub.ws.on('message', (raw) => {
      const f = JSON.parse(String(raw)) as Frame;
      if (f.op === 'msg' && f.topic === topic && typeof f.data?.i === 'number') this.latencies.set(f.data.i, performance.now() - this.sentAt[f.data.i]!);
    });
  }

  /** Connects, subscribes and starts publishing at once. */
  static async start(url: string, topic = 'victim', everyMs = 20): Promise<Victim> {
    const [pub, sub] = [await TestClient.connect(url), await TestClient.connect(url)];
    await sub.request({ op: 'sub', topic });
    const v = new Victim(pub, sub, topic);
    v.timer = setInterval(() => {
      const i = v.sentAt.length;
      v.sentAt.push(performance.now());
      pub.send({ op: 'pub', topic, data: { i } });
    }, everyMs);
    return v;
  }

  get received(): number {
    return this.latencies.size;
  }

  /** Stops publishing, waits (at most `graceMs`) for what is still on its way, and reports. */
  async stop(graceMs = 5000): Promise<VictimReport> {
    clearInterval(this.timer);
    const until = Date.now() + graceMs;
    while (this.latencies.size < this.sentAt.length && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const lat = [...this.latencies.values()].sort((a, b) => a - b);
    const at = (p: number) => Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN);
    this.pub.close();
    this.sub.close();
    return { sent: this.sentAt.length, received: lat.length, p50Ms: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99), maxMs: Math.round(lat.at(-1) ?? NaN) };
  }
}

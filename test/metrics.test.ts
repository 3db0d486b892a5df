// GET /metrics: valid Prometheus text whose counters follow the traffic, read at scrape time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';
import { SseClient } from './helpers/sse-client.js';
import { until } from './cluster/redis.js';

interface Scrape {
  types: Map<string, string>;
  /** `name{a="1",b="2"}` (labels sorted) → value */
  samples: Map<string, number>;
}

/** A strict parser for the text exposition format (version 0.0.4): throws on any line it does not understand. */
function parsePrometheus(text: string): Scrape {
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (-?(?:[0-9.e+-]+|[Nn]a[Nn]|\+Inf|-Inf))(?: -?[0-9]+)?$/; // Go's ParseFloat: NaN in any case (prom-client prints Nan)
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(meta[3]!)) throw new Error(`bad TYPE line: ${line}`);
        types.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    const m = sample.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    const [, name, labelText, value] = m;
    const family = [...types.keys()].find((f) => name === f || name!.startsWith(`${f}_`));
    if (!family) throw new Error(`sample ${name} has no # TYPE`);
    const labels = [...(labelText ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => `${k}="${v}"`).sort();
    samples.set(labels.length ? `${name}{${labels.join(',')}}` : name!, Number(value));
  }
  return { types, samples };
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.close());

async function scrape(): Promise<Scrape> {
  const res = await fetch(`${broker.httpUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

const v = (s: Scrape, key: string) => {
  const value = s.samples.get(key);
  if (value === undefined) throw new Error(`no sample ${key}; have ${[...s.samples.keys()].filter((k) => k.startsWith('switchboard')).join(', ')}`);
  return value;
};

describe('GET /metrics', () => {
  it('is Prometheus text with the broker, process and event-loop metrics', async () => {
    const s = await scrape();
    for (const [name, type] of [
      ['switchboard_connections', 'gauge'],
      ['switchboard_frames_received_total', 'counter'],
      ['switchboard_bytes_sent_total', 'counter'],
      ['switchboard_messages_published_total', 'counter'],
      ['switchboard_messages_delivered_total', 'counter'],
      ['switchboard_messages_dropped_total', 'counter'],
      ['switchboard_slow_consumer_closes_total', 'counter'],
      ['switchboard_errors_total', 'counter'],
      ['switchboard_mailbox_depth_max', 'gauge'],
      ['switchboard_actors', 'gauge'],
      ['nodejs_eventloop_lag_seconds', 'gauge'],
      ...['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map((s) => [`nodejs_eventloop_lag_${s}_seconds`, 'gauge'] as const),
      // prom-client's other default metrics, each still registered (its own lag gauges are replaced: metrics.ts)
      ['process_cpu_user_seconds_total', 'counter'],
      ['process_start_time_seconds', 'gauge'],
      ['process_resident_memory_bytes', 'gauge'],
      ['process_open_fds', 'gauge'],
      ['process_max_fds', 'gauge'],
      ['nodejs_active_handles_total', 'gauge'],
      ['nodejs_active_requests_total', 'gauge'],
      ['nodejs_active_resources_total', 'gauge'],
      ['nodejs_heap_size_used_bytes', 'gauge'],
      ['nodejs_heap_space_size_used_bytes', 'gauge'],
      ['nodejs_version_info', 'gauge'],
      ['nodejs_gc_duration_seconds', 'histogram'],
    ] as const) {
      expect(s.types.get(name), name).toBe(type);
    }
    expect(v(s, 'switchboard_actors')).toBe(1);
  });

  it('event-loop lag is read from the stall timer: a loop blocked for 300 ms shows in the delays of the scrape after it', async () => {
    await scrape(); // the delays are reset at each scrape
    const c = await TestClient.connect(broker.url); // a connection: the timer runs every 20 ms
    try {
      const end = performance.now() + 300;
      while (performance.now() < end); // blocked
      // The beat after the block, and a few ordinary ones after it (with that one alone, p50 is the block too).
      await until(() => broker.stalls.delays.max >= 250e6 && broker.stalls.delays.count >= 5, 'the timer beat after the block, and four more');
      const s = await scrape();
      expect(v(s, 'nodejs_eventloop_lag_max_seconds')).toBeGreaterThanOrEqual(0.25);
      expect(v(s, 'nodejs_eventloop_lag_p50_seconds')).toBeLessThan(v(s, 'nodejs_eventloop_lag_max_seconds'));
      expect(v(s, 'nodejs_eventloop_lag_seconds')).toBeGreaterThan(0);
    } finally {
      c.close();
      await c.closed;
      await until(() => broker.stalls.holders === 0, 'the connection to end');
    }
  });

  it('moves with traffic: connections by state, frames, bytes, publishes, deliveries, errors', async () => {
    const before = await scrape();
    const a = await TestClient.connect(broker.url);
    const b = await TestClient.connect(broker.url);
    await b.request({ op: 'sub', topic: 'm/#' });
    for (let i = 0; i < 5; i++) await a.request({ op: 'pub', topic: `m/${i}`, data: 'x'.repeat(100) });
    expect(await a.request({ op: 'sub', topic: 'bad/#/x' })).toMatchObject({ op: 'error', code: 'bad_topic' });
    for (let i = 0; i < 5; i++) await b.next((f) => f.op === 'msg');
    const during = await scrape();
    expect(v(during, 'switchboard_connections{state="online",transport="ws"}')).toBe(2);
    expect(v(during, 'switchboard_actors')).toBe(3);
    expect(v(during, 'switchboard_messages_published_total') - v(before, 'switchboard_messages_published_total')).toBe(5);
    expect(v(during, 'switchboard_messages_delivered_total') - v(before, 'switchboard_messages_delivered_total')).toBe(5);
    expect(v(during, 'switchboard_frames_received_total') - v(before, 'switchboard_frames_received_total')).toBe(7);
    expect(v(during, 'switchboard_bytes_received_total') - v(before, 'switchboard_bytes_received_total')).toBeGreaterThan(500);
    // hello ×2, 5 acks + 1 error to a, sub ack + 5 msgs to b
    expect(v(during, 'switchboard_frames_sent_total') - v(before, 'switchboard_frames_sent_total')).toBe(14);
    expect(v(during, 'switchboard_bytes_sent_total') - v(before, 'switchboard_bytes_sent_total')).toBeGreaterThan(500);
    expect(v(during, 'switchboard_errors_total{code="bad_topic"}')).toBe((before.samples.get('switchboard_errors_total{code="bad_topic"}') ?? 0) + 1);

    // Counters of closed connections are kept, not lost with their links.
    a.close();
    b.close();
    await Promise.all([a.closed, b.closed]);
    await expect.poll(async () => v(await scrape(), 'switchboard_actors'), { timeout: 5000 }).toBe(1);
    const after = await scrape();
    expect(v(after, 'switchboard_connections_closed_total') - v(before, 'switchboard_connections_closed_total')).toBe(2);
    expect(v(after, 'switchboard_frames_received_total')).toBeGreaterThanOrEqual(v(during, 'switchboard_frames_received_total'));
    expect(v(after, 'switchboard_frames_sent_total')).toBeGreaterThanOrEqual(v(during, 'switchboard_frames_sent_total'));
    expect(v(after, 'switchboard_connections{state="online",transport="ws"}')).toBe(0);
  });

  it('every transport has its connections series, at 0 when none is open (SSE\'s vanished: found by a review helper)', async () => {
    const sse = await SseClient.open(broker.httpUrl, '/sse?topics=t');
    expect(v(await scrape(), 'switchboard_connections{state="online",transport="sse"}')).toBe(1);
    sse.close();
    await expect.poll(() => broker.hub.sessionCount, { timeout: 5000 }).toBe(0);
    const after = await scrape();
    for (const transport of ['ws', 'tcp', 'mqtt', 'sse']) expect(v(after, `switchboard_connections{state="online",transport="${transport}"}`)).toBe(0);
  });

  it('gives each broker its own registry (several brokers in one process)', async () => {
    const other = await startTestBroker();
    try {
      const c = await TestClient.connect(other.url);
      const text = await (await fetch(`${other.httpUrl}/metrics`)).text();
      expect(parsePrometheus(text).samples.get('switchboard_actors')).toBe(2);
      expect(v(await scrape(), 'switchboard_actors')).toBe(1);
      c.close();
    } finally {
      await other.close();
    }
  });
});

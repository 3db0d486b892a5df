// A Redis Cluster over TLS (`--redis rediss+cluster://…`) and Sentinel over TLS (`--redis rediss+sentinel://…`), both
// with a CA of the deployment's own and client certificates (the servers ask for them: `tls-auth-clients yes`), named
// in the URL's query, and certificates that name the host only (`localhost`), which the cluster and Sentinel announce
// the servers by. Every connection a node opens (commands, both subscribers, the sharded subscribers, the
// heartbeat thread's, the Sentinel watch) is a TLS one, and messages cross between nodes over them. The test looks on
// through each server's plain port.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeClientLines, redisCli, requireRedis, rotateTls, startNode, TestRedisCluster, TestSentinel, testTls, until, type TestTls } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const haveOpenssl = spawnSync('openssl', ['version']).status === 0;
if (!haveOpenssl) {
  const reason = 'test/cluster/tls-cluster.test.ts: skipped, openssl is missing (apt-get install -y openssl)';
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must run it`);
  console.warn(reason);
}
const run = requireRedis('cluster: a Redis Cluster and Sentinel over TLS', true) && haveOpenssl;

/** The URL's query naming the CA and the client certificate. */
const files = (tls: TestTls) => `?tlsCa=${encodeURIComponent(tls.ca)}&tlsCert=${encodeURIComponent(tls.clientCert)}&tlsKey=${encodeURIComponent(tls.clientKey)}`;

describe.skipIf(!run)('cluster: Redis Cluster and Sentinel over TLS with client certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-tls-cluster-'));
  /** Certificates that name the host `localhost` only: no address in them (the servers', as managed services' do). */
  let named: TestTls;
  const nodes: TestBroker[] = [];
  const clients: TestClient[] = [];

  beforeAll(async () => {
    named = { ...(await testTls(dir, 'DNS:localhost')), authClients: true };
  }, 30_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(nodes.map((n) => n.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** A subscriber of `topic` on node b gets what node a publishes there (seq 1), through Redis (once both reach it). */
  async function crossesNodes(a: TestBroker, b: TestBroker, topic: string): Promise<void> {
    const sub = await TestClient.connect(b.url);
    clients.push(sub);
    await until(async () => (await sub.request({ op: 'sub', topic })).op === 'ack', `node b subscribed to ${topic}`, 20_000);
    // `unavailable` (503: surely not published) until node a has its Redis again; then seq 1.
    let res: Response | undefined;
    await until(async () => (res = await fetch(`${a.httpUrl}/api/publish`, { method: 'POST', body: JSON.stringify({ topic, data: 'sealed' }) })).status !== 503, `node a publishes to ${topic}`, 20_000);
    expect(res!.status).toBe(200);
    expect(await res!.json()).toMatchObject({ seq: 1 });
    expect(await sub.next((f) => f.op === 'msg' && f.topic === topic)).toMatchObject({ seq: 1, data: 'sealed' });
  }

  // The nodes' certificates name a host, not an address, and the cluster announces its nodes by that name, as managed
  // clusters do: the seeds must be reached by the name given (ioredis would resolve it to 127.0.0.1 first, which the
  // certificate does not name), and the nodes the cluster announces by theirs.
  it('rediss+cluster://, certificates naming the host: two nodes on three masters, every connection of theirs on a TLS port, a message crosses between them', async () => {
    const rc = await TestRedisCluster.start(3, 0, named, 'localhost');
    try {
      const url = rc.tlsUrl + files(named);
      expect(url).toMatch(/^rediss\+cluster:\/\/localhost:\d+,/);
      const [a, b] = [await startNode(rc, { redisUrl: url }), await startNode(rc, { redisUrl: url })];
      nodes.push(a!, b!);
      await crossesNodes(a!, b!, 'tls/cluster');
      // Each node's connections, as every master sees them through its plain port: all came to its TLS port. The
      // heartbeat thread's comes at its first tick.
      const seen = async () => (await Promise.all(rc.ports.map(async (port, i) => (await nodeClientLines(port)).map((l) => ({ l, tlsPort: rc.tlsPorts[i]! }))))).flat();
      await until(async () => (await seen()).filter(({ l }) => / name=sb-\S*-hb /.test(l)).length >= 2, 'both heartbeat threads connected');
      const lines = await seen();
      for (const { l, tlsPort } of lines) expect(l).toContain(` laddr=127.0.0.1:${tlsPort} `);
      const kinds = new Set(lines.map(({ l }) => / name=sb-\S*?(-sub|-ssub|-hb)? /.exec(l)?.[1] ?? 'cmd'));
      expect([...kinds].sort()).toEqual(['-hb', '-ssub', '-sub', 'cmd']);
      // Rotated: a new CA, server and client certificate over the same files, the cluster restarted on them. Both
      // nodes come back through the new ones (their connections read the files again), without a restart of theirs.
      await rotateTls(named, join(dir, 'next'), 'DNS:localhost');
      await rc.restart();
      await crossesNodes(a!, b!, 'tls/rotated');
    } finally {
      await Promise.all(nodes.splice(0).map((n) => n.close()));
      await rc.stop();
    }
  }, 60_000);

  // As above, the certificates name the host only: Sentinel knows and announces the master by that name.
  it('rediss+sentinel://, certificates naming the host: the Sentinel and the master over TLS, every connection there a TLS one, a message crosses between nodes', async () => {
    const s = await TestSentinel.start({ tls: named, announce: 'localhost' });
    try {
      const url = s.tlsUrl + files(named);
      expect(url).toMatch(/^rediss\+sentinel:\/\/localhost:\d+\//);
      expect(await s.sentinel('GET-MASTER-ADDR-BY-NAME', TestSentinel.MASTER)).toMatch(/^localhost\n/);
      const [a, b] = [await startNode(s.master, { redisUrl: url }), await startNode(s.master, { redisUrl: url })];
      nodes.push(a!, b!);
      await crossesNodes(a!, b!, 'tls/sentinel');
      await until(async () => (await nodeClientLines(s.master.port)).filter((l) => / name=sb-\S*-hb /.test(l)).length >= 2, 'both heartbeat threads connected');
      const lines = await nodeClientLines(s.master.port);
      expect(lines.length).toBeGreaterThanOrEqual(6); // per node: commands, subscriber, heartbeat
      for (const l of lines) expect(l).toContain(` laddr=127.0.0.1:${s.master.tlsPort} `);
      // The failover watch's connections to the Sentinel (one per watched connection) are TLS ones too.
      const watchers = (await redisCli(s.port, 'CLIENT', 'LIST')).split('\n').filter((l) => / cmd=subscribe /.test(l));
      expect(watchers.length).toBeGreaterThanOrEqual(4);
      for (const l of watchers) expect(l).toContain(` laddr=127.0.0.1:${s.tlsPort} `);
    } finally {
      await Promise.all(nodes.splice(0).map((n) => n.close()));
      await s.stop();
    }
  }, 60_000);
});

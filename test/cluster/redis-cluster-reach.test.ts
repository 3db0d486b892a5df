// A node's commands other than publishes while a master's connection is opening. Publishes wait for a ready
// connection to their master (outcome.ts Reach); every other command goes through ioredis's routing, which (the
// Cluster has no offline queue) refuses a command for a master whose connection is still opening, unsent, and sends
// it again after a slot refresh. They must not fail on a healthy cluster: at a node's start (its INIT), and right
// after a node's connection to a master was lost (the next commands to it open a new one).
import { Writable } from 'node:stream';
import type { Cluster } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults, type Config } from '../../src/config.js';
import { startBroker } from '../../src/broker.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import type { RedisEngine } from '../../src/engine/redis/engine.js';
import { FAST_NODE, redisCli, requireRedis, startNode, TestRedisCluster, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('redis cluster reach', true);

describe.skipIf(!run)('Redis Cluster: commands other than publishes while a master connection opens', () => {
  let rc: TestRedisCluster;
  let node: TestBroker;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    rc = await TestRedisCluster.start(3, 0);
    // Ticks far apart: no slot refresh of the tick (shards.ts) opens the lost master's connection again meanwhile.
    node = await startNode(rc, { nodeTickMs: 10_000, nodeTtlMs: 30_000 });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await node?.close();
    await rc?.stop();
  });

  it('a node starts without its initialisation failing (no "Connection is closed." at start)', async () => {
    for (let k = 0; k < 3; k++) {
      const lines: string[] = [];
      const log = pino({ level: 'warn' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
      const config: Config = { ...defaults, host: '127.0.0.1', port: 0, tcpPort: 0, logLevel: 'warn', redisUrl: rc.url, ...FAST_NODE };
      const broker = await startBroker(config, { log, tcpPort: 0 });
      await broker.close();
      expect(lines.map((l) => `${JSON.parse(l).msg} ${JSON.parse(l).err ?? ''}`)).toEqual([]);
    }
  }, 30_000);

  /** Two topics on one master that does not hold {g}. */
  const twoTopicsOffG = async (prefix: string): Promise<{ topics: [string, string]; port: number }> => {
    const gOwner = await rc.ownerOf(await rc.keyslot(KEYS.nodes));
    const byPort = new Map<number, string[]>();
    for (let i = 0; i < 500; i++) {
      const port = await rc.ownerOf(await rc.keyslot(KEYS.meta(`${prefix}${i}`)));
      if (port === gOwner) continue;
      const list = byPort.get(port) ?? [];
      list.push(`${prefix}${i}`);
      byPort.set(port, list);
      if (list.length === 2) return { topics: [list[0]!, list[1]!], port };
    }
    throw new Error('no two topics off the {g} master');
  };

  it('right after its connection to a master is lost, the node answers resumes of topics on that master', async () => {
    const { topics, port } = await twoTopicsOffG('rv/t');
    const pub = await TestClient.connect(node.url);
    const a = await TestClient.connect(node.url);
    const b = await TestClient.connect(node.url);
    clients.push(pub, a, b);
    for (const topic of topics) expect(await pub.request({ op: 'pub', topic, data: 'x' })).toMatchObject({ op: 'ack', seq: 1 });

    // The node's command connection to that master is killed; the node's pool drops it (ioredis opens a new one
    // for the next command there). The master itself stays up and the cluster healthy.
    const engine = node.hub as unknown as RedisEngine;
    const id = /^id=(\d+) .* name=sb-[0-9a-f]+ /m.exec(await redisCli(port, 'client', 'list'))![1]!;
    await redisCli(port, 'client', 'kill', 'id', id);
    await until(async () => !(engine.redis.cmd as Cluster).nodes('master').some((n) => n.options.port === port), 'the pool to drop the master', 5000);

    // Two resumes at once (each reads its topic's stream on that master): both are answered from the stream.
    const [ra, rb] = await Promise.all([a.request({ op: 'sub', topic: topics[0], since: 0 }), b.request({ op: 'sub', topic: topics[1], since: 0 })]);
    expect([ra.op, ra.code, rb.op, rb.code]).toEqual(['ack', undefined, 'ack', undefined]);
  }, 30_000);
});

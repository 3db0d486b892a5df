// A rename whose CLAIM_NAME was written and then lost with its connection (the Redis connection cut while the script
// is out) is answered outcome_unknown, and the client keeps its name. It was acknowledged (a join's "Redis down: local
// check only" was used for renames too) although the cluster never gave it the name: another node gave the same
// name to its own client, and the old name stayed claimed in Redis for ever. And one whose claim ran: the node puts
// Redis back in line with the client's name when it reconnects (REASSERT, the record's writes free the name the
// record had). Found by a review helper.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { health, proxiedNodes, redisCli, RedisProxy, requireRedis, TestRedis, until } from './redis.js';
import { TestClient } from '../helpers/client.js';
import type { TestBroker } from '../helpers/broker.js';

const run = requireRedis('a rename whose claim was lost with the connection', true);

describe.skipIf(!run)('cluster: a rename whose claim was lost with the connection', () => {
  let redis: TestRedis;
  let proxy: RedisProxy;
  let a: TestBroker; // behind the proxy, a long heartbeat: never reaped during the cut
  let b: TestBroker;
  const clients: TestClient[] = [];

  const nodes = proxiedNodes({ nodeTtlMs: 30_000, nodeTickMs: 250 });
  beforeAll(() => void ({ redis, proxy, a, b } = nodes));
  afterAll(() => {
    for (const c of clients) c.close();
  });

  it('is not acknowledged, never leaves two clients with one name, and frees the old name when the client leaves', async () => {
    const alice = await TestClient.connect(a.url + '?name=alice5');
    clients.push(alice);
    expect(alice.hello.client.name).toBe('alice5');
    const id = alice.hello.client.id as string;

    proxy.hold('bobby5');
    const renamed = alice.request({ op: 'rename', name: 'bobby5' }, 10_000);
    await until(() => proxy.held, 'the CLAIM_NAME held at the proxy', 5000);
    await proxy.cut(); // the held script never reaches Redis; the connection closes under it
    proxy.release(); // (what was held went with the cut connections; hold nothing more)
    const answer = await renamed;
    // While A is cut off, a client on B takes 'bobby5' (free in Redis: A's claim never arrived).
    const other = await TestClient.connect(b.url + '?name=bobby5');
    clients.push(other);
    expect(other.hello.client.name).toBe('bobby5');

    await proxy.restore();
    await until(async () => (await health(a)) === 'running', 'node A running again', 15_000);

    // The truth: the rename did not happen in the cluster, so it must not be acknowledged as done.
    expect(answer).toMatchObject({ op: 'error', code: 'outcome_unknown' });
    // `who` (from any node): never two clients with one name.
    const who = await other.request({ op: 'who' });
    const named = (who.clients as { name: string }[]).filter((c) => c.name === 'bobby5');
    expect(named.length, `who: ${JSON.stringify(who.clients)}`).toBe(1);

    alice.close();
    await until(async () => (await redisCli(redis.port, 'HGET', 'sb:{g}:clients', id)) === '', 'alice record dropped', 10_000);
    // Its names are free again: nobody holds 'alice5'.
    expect(await redisCli(redis.port, 'HGET', 'sb:{g}:names', 'alice5'), 'alice5 still claimed by the departed client').toBe('');
    const late = await TestClient.connect(b.url + '?name=alice5');
    clients.push(late);
    expect(late.hello.client.name).toBe('alice5');
  }, 60_000);

  it('one whose claim ran but whose answer was lost: the client holds exactly one name, and none after it left', async () => {
    const carol = await TestClient.connect(a.url + '?name=carol5');
    clients.push(carol);
    const id = carol.hello.client.id as string;
    proxy.hold('dave5');
    const renamed = carol.request({ op: 'rename', name: 'dave5' }, 10_000);
    await until(() => proxy.held, 'the CLAIM_NAME held at the proxy', 5000);
    redis.pause();
    proxy.release();
    await until(() => proxy.forwarded('dave5'), 'the CLAIM_NAME sent towards Redis', 5000);
    await proxy.cut();
    redis.resume(); // Redis runs the claim; its answer went with the connection
    const answer = await renamed;
    expect(answer).toMatchObject({ op: 'error', code: 'outcome_unknown' });
    await proxy.restore();
    await until(async () => (await health(a)) === 'running', 'node A running again', 15_000);
    const local = 'carol5';
    const held = async () => {
      const flat = (await redisCli(redis.port, 'HGETALL', 'sb:{g}:names')).split('\n');
      const mine: string[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i + 1] === id) mine.push(flat[i]!);
      return mine;
    };
    await until(async () => (await held()).join() === local, `the names held by ${id} are [${local}]`, 10_000).catch(async () => {
      throw new Error(`answer ${JSON.stringify(answer)}; names held by ${id}: ${JSON.stringify(await held())}`);
    });
    carol.close();
    await until(async () => (await held()).length === 0, `no name held by ${id} after it left`, 10_000);
  }, 60_000);
});

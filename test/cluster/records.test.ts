// The cluster's client records as the reaping and re-asserting scripts read them (scripts.ts REAP, REASSERT), run
// against a private redis-server: a record Redis's Lua cjson cannot read (the broker refuses what would make one:
// a lone surrogate in a name, filter or meta; this is a record from elsewhere) never fails the whole script — a REAP
// that failed after taking the dead node out of the node set left its clients in `who` for good, and a REASSERT
// that failed kept a node from ever coming back up after a reconnect.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as LUA from '../../src/engine/redis/scripts.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import { requireRedis, TestRedis } from './redis.js';

const run = requireRedis('cluster: client records the scripts cannot read');
/** What JSON.stringify wrote for a name holding a lone surrogate before the broker refused one: cjson refuses the escape. */
const UNREADABLE = '{"id":"c2","name":"x\\ud800","transport":"ws","addr":"127.0.0.1:2","subs":["room"]}';
const record = (id: string, name: string, subs: string[]) => JSON.stringify({ id, name, transport: 'ws', addr: '127.0.0.1:1', subs });

describe.skipIf(!run)('REAP and REASSERT over records cjson cannot read', () => {
  let redis: TestRedis;
  let r: Redis;
  let sub: Redis;
  beforeAll(async () => {
    redis = await TestRedis.start();
    r = new Redis(redis.url);
    sub = new Redis(redis.url);
  });
  afterAll(async () => {
    r?.disconnect();
    sub?.disconnect();
    await redis?.stop();
  });

  it('REAP announces the readable clients, drops the unreadable record, and the node is reaped once', async () => {
    expect(await r.eval('return cjson.decode(ARGV[1])', 0, UNREADABLE).catch((e: Error) => e.message)).toMatch(/invalid unicode escape/);
    const heard: string[] = [];
    sub.on('message', (_c: string, m: string) => heard.push(m));
    await sub.subscribe('bus');
    await r.sadd(KEYS.nodes, 'n1');
    await r.sadd(KEYS.nodeClients('n1'), 'c1', 'c2');
    await r.hset(KEYS.clients, 'c1', record('c1', 'ann', ['room']), 'c2', UNREADABLE);
    await r.hset(KEYS.names, 'ann', 'c1');
    const keys = [KEYS.nodes, KEYS.heartbeat('n1'), KEYS.clients, KEYS.names, KEYS.nodeClients('n1')];
    expect(await r.eval(LUA.REAP, keys.length, ...keys, 'n1', 'bus')).toBe(2);
    expect(await r.hlen(KEYS.clients)).toBe(0);
    expect(await r.hget(KEYS.names, 'ann')).toBeNull();
    expect(await r.sismember(KEYS.nodes, 'n1')).toBe(0);
    // ann's timeout on her one filter; nothing for the record nobody could read. A PING round trip on the subscriber's
    // connection: Redis wrote the PUBLISHes to it before answering the PING.
    await sub.ping();
    expect(heard.map((m) => JSON.parse(m.slice(1)) as { e: string; c: { name: string }; f: string })).toEqual([{ e: 'timeout', c: expect.objectContaining({ name: 'ann' }), f: 'room' }]);
    expect(await r.eval(LUA.REAP, keys.length, ...keys, 'n1', 'bus')).toBe(-1); // claimed once
  });

  it('REASSERT re-asserts the node and its readable clients, and keeps the unreadable record without a name', async () => {
    await r.sadd(KEYS.nodeClients('n2'), 'c9');
    await r.hset(KEYS.clients, 'c9', UNREADABLE.replace('"c2"', '"c9"')); // an old record of a client the node no longer holds
    const keys = [KEYS.nodes, KEYS.heartbeat('n2'), KEYS.clients, KEYS.names, KEYS.nodeClients('n2')];
    const reply = await r.eval(LUA.REASSERT, keys.length, ...keys, 'n2', '5000', 'c3', record('c3', 'bea', ['t']), 'c4', UNREADABLE.replace('"c2"', '"c4"'));
    expect(reply).toEqual([1]); // the node was not in the node set; no name conflicts
    expect(await r.sismember(KEYS.nodes, 'n2')).toBe(1);
    expect(await r.hget(KEYS.names, 'bea')).toBe('c3');
    expect(await r.hexists(KEYS.clients, 'c9')).toBe(0); // dropped: no longer the node's
    expect(await r.smembers(KEYS.nodeClients('n2'))).toEqual(expect.arrayContaining(['c3', 'c4']));
  });
});

// The Redis stores of MQTT retained messages and persistent sessions, against a redis-server of the test's own: their
// bounds (messages, bytes, sessions, a session's size), the last publish winning by seq, expiry, and what a wildcard
// look-up finds (docs/mqtt.md, On a cluster).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger } from '../../src/log.js';
import { RedisRetainedStore, literalPrefix } from '../../src/transports/mqtt/redis-retained.js';
import { RedisSessionStore, decodeSession, encodeSession } from '../../src/transports/mqtt/redis-sessions.js';
import { MemorySessionStore, type Retained, type SessionStore, type StoredSession } from '../../src/transports/mqtt/store.js';
import { Outgoing } from '../../src/protocol/outgoing.js';
import { ScriptRunner } from '../../src/engine/redis/script-runner.js';
import { RedisProxy, requireRedis, TestRedis, until } from '../cluster/redis.js';

const run = requireRedis('mqtt redis stores');
const log = createLogger('silent', false);
const msg = (topic: string, payload: string, qos: 0 | 1 | 2 = 1): Retained => ({ topic, payload: Buffer.from(payload), qos });
const payloadOf = (out: Outgoing) => Buffer.from(JSON.stringify((out.frame as { data: unknown }).data));

const session = (over: Partial<StoredSession> = {}): StoredSession => ({
  filters: new Map([['a/#', 1]]),
  positions: new Map([['a/b', { seq: 4, epoch: 'e' }]]),
  life: 'L',
  inflight: new Map(),
  nextPacketId: 7,
  expiresAt: Infinity,
  ...over,
});

/**
 * A session's owners (store.ts), the same in memory and in Redis: a claim finds the session held while an earlier
 * connection has not kept it yet, and once that one's hold is overridden its late keep is refused (the interleaving
 * of test/mqtt/cluster.test.ts "a session resumed and left again…": a short visit ending after the client came back).
 */
function sessionOwnership(store: (max?: number) => SessionStore): void {
  it('sessions: a claim waits for the owner still keeping it; a hold overridden cannot keep; release ends only its own hold', async () => {
    const s = store();
    expect(await s.take('blink', 'a/1')).toEqual({ session: undefined });
    // A newer connection's claim while the first still holds it (it ended, its keep is on its way).
    expect(await s.take('blink', 'b/1')).toEqual({ heldBy: 'a/1' });
    expect(await s.keep('blink', 'a/1', session({ filters: new Map([['blink/#', 1]]) }))).toBe(true);
    const resumed = await s.take('blink', 'b/1');
    expect(resumed.heldBy === undefined && [...resumed.session!.filters.keys()]).toEqual(['blink/#']);
    // b/1 still holds it; c/1 overrides the hold (a clean session, or a hold that outlived its connection).
    expect(await s.take('blink', 'c/1', true)).toEqual({ session: undefined });
    // b/1's keep comes late: refused, so the empty session it would leave behind is not what c/1's successor finds.
    expect(await s.keep('blink', 'b/1', session({ filters: new Map() }))).toBe(false);
    await s.release('blink', 'b/1'); // not b/1's to release any more
    expect(await s.take('blink', 'd/1')).toEqual({ heldBy: 'c/1' });
    expect(await s.keep('blink', 'c/1', session())).toBe(true);
    expect(await s.take('blink', 'd/1')).toEqual({ session: session() });
    await s.release('blink', 'd/1');
    expect(await s.take('blink', 'e/1')).toEqual({ session: undefined });
  });

  it('sessions: a resume\'s claim leaves the session stored until its owner keeps a newer one or drops it', async () => {
    const s = store();
    await s.take('lost', 'a/1');
    expect(await s.keep('lost', 'a/1', session({ filters: new Map([['lost/#', 1]]) }))).toBe(true);
    // b/1's claim is made, but its answer never reaches it (Redis hung): b/1 is refused, its hold released.
    await s.take('lost', 'b/1', false, true);
    await s.release('lost', 'b/1');
    const again = await s.take('lost', 'c/1', false, true);
    expect(again.heldBy === undefined && [...again.session!.filters.keys()]).toEqual(['lost/#']);
    // c/1 keeps a newer one: that is what the next claim finds.
    expect(await s.keep('lost', 'c/1', session({ filters: new Map([['newer/#', 1]]) }))).toBe(true);
    const newer = await s.take('lost', 'd/1', false, true);
    expect(newer.heldBy === undefined && [...newer.session!.filters.keys()]).toEqual(['newer/#']);
    // d/1's session ends with it (clean at its end, or expiry 0): dropped.
    await s.release('lost', 'd/1', true);
    expect(await s.take('lost', 'e/1', false, true)).toEqual({ session: undefined });
    // A clean session's claim removes what was stored at once.
    await s.release('lost', 'e/1');
    expect(await s.keep('lost', 'e/1', session())).toBe(false); // e/1 released it: nothing to keep
    await s.take('lost', 'f/1');
    expect(await s.keep('lost', 'f/1', session())).toBe(true);
    expect((await s.take('lost', 'g/1')).heldBy).toBeUndefined();
    await s.release('lost', 'g/1');
    expect(await s.take('lost', 'h/1', false, true)).toEqual({ session: undefined });
  });

  it('sessions: the bound (--mqtt-sessions) counts the sessions of clients away, not what a live connection resumed', async () => {
    const s = store(2);
    const leave = async (id: string, owner: string) => {
      await s.take(id, owner);
      expect(await s.keep(id, owner, session({ filters: new Map([[`${id}/#`, 1]]) }))).toBe(true);
    };
    const filtersOf = async (id: string, owner: string) => {
      const claim = await s.take(id, owner, false, true);
      return claim.heldBy === undefined && claim.session ? [...claim.session.filters.keys()] : claim;
    };
    await leave('p', 'p/1');
    await leave('l', 'l/1');
    expect(await filtersOf('l', 'l/2')).toEqual(['l/#']); // l is connected again
    await leave('q', 'q/1'); // away: p and q, within the bound of 2
    expect(await filtersOf('p', 'p/2')).toEqual(['p/#']);
    // l's connection ends without keeping a newer one (its keep failed): what it resumed is a session away again.
    await s.release('l', 'l/2');
    expect(await filtersOf('l', 'l/3')).toEqual(['l/#']);
    expect(await filtersOf('q', 'q/2')).toEqual(['q/#']);
  });

  it('sessions: a session counted again pushes an expired session out of the bound before a live one', async () => {
    const s = store(2);
    const leave = async (id: string, owner: string, expiresAt = Infinity) => {
      await s.take(id, owner);
      expect(await s.keep(id, owner, session({ filters: new Map([[`${id}/#`, 1]]), expiresAt }))).toBe(true);
    };
    await leave('l', 'l/1');
    await s.take('l', 'l/2', false, true); // l's client is back: out of the bound
    await leave('a', 'a/1'); // away, never expires (the least recently kept)
    const soon = Date.now() + 200;
    await leave('z', 'z/1', soon); // away, expires in 200 ms
    await until(() => Date.now() > soon + 20, 'z expired');
    // l's connection ends without keeping a newer one: three away, one of them (z) expired.
    await s.release('l', 'l/2');
    for (const id of ['a', 'l']) {
      const claim = await s.take(id, `${id}/3`, false, true);
      expect(claim.heldBy === undefined && claim.session && [...claim.session.filters.keys()], `${id} pushed out instead of the expired z`).toEqual([`${id}/#`]);
    }
  });
}

describe('MQTT sessions in memory', () => {
  sessionOwnership((max = 10) => new MemorySessionStore(max));
});

describe.skipIf(!run)('MQTT stores in Redis', () => {
  let redis: TestRedis;
  let cmd: Redis;
  let scripts: ScriptRunner;
  beforeAll(async () => {
    redis = await TestRedis.start();
    cmd = new Redis(redis.url);
    scripts = new ScriptRunner(cmd);
  });
  afterAll(async () => {
    cmd?.disconnect();
    await redis?.stop();
  });
  beforeEach(async () => {
    await cmd.flushall();
  });

  const topics = async (store: RedisRetainedStore, filter: string) => (await store.matching(filter, 1000)).map((r) => `${r.topic}=${r.payload.toString()}`).sort();

  it('retained: the last publish by seq wins whichever node keeps it last; an empty payload clears; another epoch replaces', async () => {
    const store = new RedisRetainedStore(cmd, scripts, 100, 10_000, log);
    await store.set(msg('a/b', 'second'), { epoch: 'e1', seq: 2 });
    await store.set(msg('a/b', 'first'), { epoch: 'e1', seq: 1 }); // kept late by a slower node: ignored
    expect(await topics(store, 'a/b')).toEqual(['a/b=second']);
    await store.set(msg('a/b', ''), { epoch: 'e1', seq: 1 }); // an older clear: ignored too
    expect(await topics(store, 'a/b')).toEqual(['a/b=second']);
    await store.set(msg('a/b', ''), { epoch: 'e1', seq: 3 });
    expect(await topics(store, 'a/#')).toEqual([]);
    // A publish older than the clear, kept late by a slower node: the clear stands (the publish was kept again).
    await store.set(msg('a/b', 'v2'), { epoch: 'e1', seq: 2 });
    expect(await topics(store, 'a/#')).toEqual([]);
    await store.set(msg('a/b', 'new life'), { epoch: 'e2', seq: 1 });
    expect(await topics(store, 'a/+')).toEqual(['a/b=new life']);
  });

  it('retained: bounded in messages and in bytes, the oldest going first; a message over the whole budget is not kept', async () => {
    // Each costs its topic and payload bytes, as on one node: 4 each here.
    const store = new RedisRetainedStore(cmd, scripts, 3, 14, log);
    for (const t of ['t/1', 't/2', 't/3', 't/4']) await store.set(msg(t, 'x'));
    expect(await topics(store, 't/+')).toEqual(['t/2=x', 't/3=x', 't/4=x']);
    await store.set(msg('t/1', 'x')); // 3 messages (12 bytes) is the count bound again: t/2 goes
    expect(await topics(store, 't/+')).toEqual(['t/1=x', 't/3=x', 't/4=x']);
    await store.set(msg('t/5', 'yyyyyy')); // 9 bytes: the two oldest (t/3, t/4) go
    expect(await topics(store, '#')).toEqual(['t/1=x', 't/5=yyyyyy']);
    await store.set(msg('t/6', 'z'.repeat(12))); // over the whole budget: not kept, nothing pushed out
    expect(await topics(store, '#')).toEqual(['t/1=x', 't/5=yyyyyy']);
    await store.set(msg('t/5', ''));
    expect(await cmd.hget('sb:{g}:mqtt:retained:totals', 'bytes')).toBe('4');
  });

  it('retained: a wildcard reads the names under its literal prefix and matches MQTT rules ($ topics, # and its parent)', async () => {
    const store = new RedisRetainedStore(cmd, scripts, 100, 100_000, log);
    for (const t of ['plant/1/temp', 'plant/2/temp', 'plant/2/hum', 'plantx/1/temp', 'plant', '$SYS/up', 'other']) await store.set(msg(t, 'v'));
    expect(literalPrefix('plant/+/temp')).toBe('plant');
    expect(await topics(store, 'plant/+/temp')).toEqual(['plant/1/temp=v', 'plant/2/temp=v']);
    expect(await topics(store, 'plant/#')).toEqual(['plant/1/temp=v', 'plant/2/hum=v', 'plant/2/temp=v', 'plant=v']);
    expect(await topics(store, '#')).not.toContain('$SYS/up=v');
    expect(await topics(store, '$SYS/#')).toEqual(['$SYS/up=v']);
    expect((await store.matching('#', 2)).length).toBe(2);
    // Read two names at a time: every page is read until the names under the prefix end.
    const paged = new RedisRetainedStore(cmd, scripts, 100, 100_000, log, 2);
    expect(await topics(paged, 'plant/+/temp')).toEqual(['plant/1/temp=v', 'plant/2/temp=v']);
    expect(await topics(paged, '+/+/temp')).toEqual(['plant/1/temp=v', 'plant/2/temp=v', 'plantx/1/temp=v']);
  });

  it('retained: 5.0 properties (user properties, correlation data) come back as they were', async () => {
    const store = new RedisRetainedStore(cmd, scripts, 100, 100_000, log);
    await store.set({ ...msg('p', 'x', 2), properties: { userProperties: { site: 'north' }, correlationData: Buffer.from([1, 2, 255]), messageExpiryInterval: 60 }, at: 1000 });
    const [r] = await store.matching('p', 1);
    expect(r).toEqual({ topic: 'p', payload: Buffer.from('x'), qos: 2, at: 1000, properties: { userProperties: { site: 'north' }, correlationData: Buffer.from([1, 2, 255]), messageExpiryInterval: 60 } });
  });

  it('sessions: taken once; expired ones are gone; over the bound the least recently kept goes', async () => {
    const store = new RedisSessionStore(scripts, 2, payloadOf, log);
    // Each connection holds its client id's session from its claim (take) until it keeps it.
    const kept = async (clientId: string, s: StoredSession) => {
      await store.take(clientId, `o-${clientId}`);
      return store.keep(clientId, `o-${clientId}`, s);
    };
    expect(await kept('one', session())).toBe(true);
    expect(await store.take('one', 'o2')).toEqual({ session: session() });
    await store.release('one', 'o2');
    expect(await store.take('one', 'o3')).toEqual({ session: undefined });
    await store.release('one', 'o3');
    await kept('past', session({ expiresAt: Date.now() - 1 }));
    expect(await store.take('past', 'o4')).toEqual({ session: undefined });
    await kept('x', session());
    await kept('y', session());
    await kept('z', session());
    expect(await store.take('x', 'o5')).toEqual({ session: undefined });
    const y = await store.take('y', 'o6');
    expect(y.heldBy === undefined && y.session?.nextPacketId).toBe(7);
    // The expired session was purged from Redis by a later operation, not only refused.
    expect(await cmd.hlen('sb:{g}:mqtt:sessions')).toBe(1);
  });

  sessionOwnership((max = 10) => new RedisSessionStore(scripts, max, payloadOf, log));

  it('sessions: a release Redis did not answer is retried until it does; a closed store remembers none', async () => {
    const proxy = await RedisProxy.start(redis.port);
    const conn = new Redis(proxy.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    const store = new RedisSessionStore(new ScriptRunner(conn), 10, payloadOf, log);
    const owner = (id: string) => cmd.hget('sb:{g}:mqtt:sessions:owners', id);
    const lose = async () => {
      await proxy.cut();
      await until(() => conn.status !== 'ready', 'the store\'s connection lost');
    };
    try {
      await until(() => conn.status === 'ready', 'the store connected');
      await store.take('r', 'r/1', false, true);
      await lose();
      await store.release('r', 'r/1');
      expect({ pending: store.pendingReleases, holder: await owner('r') }).toEqual({ pending: 1, holder: 'r/1' });
      await proxy.restore();
      await until(async () => (await owner('r')) === null, 'the hold released once Redis answers');
      await until(() => store.pendingReleases === 0, 'the store told so (its reply read)');
      await until(() => conn.status === 'ready', 'the store connected again');
      await store.take('s', 's/1', false, true);
      await lose();
      store.close();
      await store.release('s', 's/1');
      expect(store.pendingReleases).toBe(0);
    } finally {
      store.close();
      conn.disconnect();
      await proxy.cut();
    }
  });

  it('sessions: unacknowledged messages over the size bound are left out and their topic replays from before them', () => {
    const out = (seq: number) => Outgoing.prebuilt({ op: 'msg', topic: 'a/b', seq, epoch: 'e', ts: 1, data: 'y'.repeat(100) } as never, '{}', 2, undefined);
    const s = session({
      positions: new Map([['a/b', { seq: 9, epoch: 'e' }]]),
      inflight: new Map([
        [1, { qos: 1, released: false, topic: 'a/b', payload: out(7), retain: false }],
        [2, { qos: 1, released: false, topic: 'a/b', payload: out(8), retain: false }],
      ]),
    });
    const whole = decodeSession(encodeSession(s, payloadOf, 1_000_000))!;
    expect([...whole.inflight.keys()]).toEqual([1, 2]);
    expect(whole.positions.get('a/b')).toEqual({ seq: 9, epoch: 'e' });
    const small = encodeSession(s, payloadOf, 300);
    expect(small.length).toBeLessThanOrEqual(300);
    const cut = decodeSession(small)!;
    expect([...cut.inflight.keys()]).toEqual([1]);
    expect(cut.positions.get('a/b')).toEqual({ seq: 7, epoch: 'e' });
  });

  it('sessions: the QoS 2 ids awaiting PUBREL, the filters\' 5.0 options (No Local, Retain As Published, Subscription Identifiers; those of a message in flight too) and the last connections\' ids are kept (exactly once, the options across a resume)', () => {
    const s = session({ filters: new Map([['a/#', 2 as const]]), received: [7, 65535], noLocal: ['a/#'], retainAsPublished: ['a/#'], subscriptionIds: [['a/#', 268_435_455]], ids: ['17', '42'] });
    s.inflight.set(3, { qos: 1, released: false, topic: 'a/b', payload: Buffer.from('x'), retain: true, ids: [1, 9] });
    s.inflight.set(4, { qos: 2, released: true, topic: 'a/c', payload: Buffer.from('y'), retain: false });
    const back = decodeSession(encodeSession(s, payloadOf, 1_000_000))!;
    expect(back).toMatchObject({ received: [7, 65535], noLocal: ['a/#'], retainAsPublished: ['a/#'], subscriptionIds: [['a/#', 268_435_455]], ids: ['17', '42'] });
    expect([...back.inflight].map(([pid, f]) => [pid, f.retain, f.ids])).toEqual([[3, true, [1, 9]], [4, false, undefined]]);
    // A session kept before these fields existed reads as none held.
    expect(decodeSession(encodeSession(session({}), payloadOf, 1_000_000))).toMatchObject({ received: undefined, noLocal: undefined, retainAsPublished: undefined, subscriptionIds: undefined, ids: undefined });
  });
});

// The cluster engine's two Redis parts on their own, RedisPresence and RedisBroker (src/engine/redis/presence-store.ts,
// broker.ts), composed as RedisEngine composes them (engine.ts) but without the protocol core, over one real
// redis-server: two nodes in this process, sessions without sockets (test/engine/fakes.ts). What each part promises
// the core, asked of the part itself: unique names and `who` across nodes, lookups, refusals while Redis is away,
// presence events on every node in order; a message published after a subscription is ready reaches it in seq order,
// a publisher's node counts only its own deliveries, the barrier, directs to another node's client.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Locals } from '../../src/engine/local.js';
import { RedisBroker } from '../../src/engine/redis/broker.js';
import { ClientDirectory } from '../../src/engine/redis/directory.js';
import { RedisNode } from '../../src/engine/redis/node.js';
import { PresenceRelay, type BusPresence } from '../../src/engine/redis/presence-relay.js';
import { RedisPresence } from '../../src/engine/redis/presence-store.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import type { PublishResult } from '../../src/engine/engine.js';
import { fake, type Fake } from '../engine/fakes.js';
import { FAST_NODE, requireRedis, TestRedis, until } from './redis.js';

const run = requireRedis('cluster parts');
const log = pino({ level: 'silent' });

/** One node: RedisNode, its Locals, and the two parts over them, wired as engine.ts wires them. */
class PartsNode {
  readonly local = new Locals<Fake>({ maxSubscriptions: 10 });
  readonly node: RedisNode;
  readonly broker: RedisBroker<Fake>;
  readonly presence: RedisPresence<Fake>;
  readonly directory: ClientDirectory<Fake>;
  /** Presence events this node heard on the bus, in order. */
  readonly heard: BusPresence[] = [];

  constructor(url: string) {
    // A command timeout longer than any test here: a request that waited for one to pass would not finish in time.
    this.node = new RedisNode({ url, log, nodeTtlMs: FAST_NODE.nodeTtlMs, tickMs: FAST_NODE.nodeTickMs, connectTimeoutMs: 10_000, commandTimeoutMs: 60_000 });
    this.broker = new RedisBroker<Fake>(this.node, this.local, { historySize: 100, historyTopicBytes: 1 << 20, interestLingerMs: 100, presence: (p) => this.heard.push(p) });
    this.local.index.onFilter = (filter, held) => this.broker.interest(filter, held);
    const relay = new PresenceRelay({ up: () => this.node.up, publish: (p) => this.broker.bus.presence(p), publishAll: (ps) => this.broker.bus.presenceAll(ps), log });
    this.directory = new ClientDirectory<Fake>(this.node, this.local.registry, log);
    this.presence = new RedisPresence<Fake>(this.directory, relay, () => this.node.up);
    this.node.attach({
      count: () => this.local.registry.size,
      records: () => [...this.local.registry.values()].map((c) => [c.id, JSON.stringify(this.directory.record(c))]),
      reasserted: () => relay.flush(),
      ticked: () => relay.pending && relay.flush(),
      lifeLost: () => this.broker.lifeLost(),
      subscriber: (up) => this.broker.subscriber(up),
      message: (channel, payload) => this.broker.bus.receive(channel, payload),
    });
  }

  static async start(url: string): Promise<PartsNode> {
    const n = new PartsNode(url);
    await n.node.start();
    return n;
  }

  /** A local client named `name`, registered here (not yet in Redis). */
  client(name: string): Fake {
    const s = fake(this.node.ids.take());
    s.name = name;
    this.local.registry.add(s);
    return s;
  }

  /** `s` subscribes to `filter` (as the core does before its ack: locally, then its record, then the channels). */
  async sub(s: Fake, filter: string, presence = false): Promise<void> {
    this.local.subscriptions.add(s, filter, presence);
    await this.presence.record(s);
    await this.broker.ready(filter);
  }

  async close(): Promise<void> {
    this.broker.close();
    await this.node.close(async () => undefined);
  }
}

const msgs = (s: Fake, topic: string) => s.frames.filter((f) => f.op === 'msg' && f.topic === topic) as { seq: number; epoch: string; data: unknown }[];
const ok = (r: PublishResult | ProtocolError): PublishResult => {
  if (r instanceof ProtocolError) throw new Error(`publish refused: ${r.code} ${r.message}`);
  return r;
};

describe.skipIf(!run)('RedisPresence and RedisBroker over one Redis, two nodes', () => {
  let redis: TestRedis;
  let a: PartsNode;
  let b: PartsNode;

  beforeAll(async () => {
    redis = await TestRedis.start();
    [a, b] = await Promise.all([PartsNode.start(redis.url), PartsNode.start(redis.url)]);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await redis?.stop();
  });

  it('names are unique across nodes: a claimed name is refused on the other node until a rename frees it; a local holder is refused without Redis', async () => {
    const ann = a.client('guest-a');
    const bo = b.client('guest-b');
    expect(await a.presence.claimName(ann, 'ann', 'guest-a', undefined)).toBe(true);
    ann.name = 'ann';
    expect(await b.presence.claimName(bo, 'ann', 'guest-b', undefined)).toBe(false);
    expect(await a.presence.claimName(ann, 'anna', 'ann', undefined)).toBe(true); // frees 'ann'
    ann.name = 'anna';
    expect(await b.presence.claimName(bo, 'ann', 'guest-b', undefined)).toBe(true);
    bo.name = 'ann';
    // Claiming the name one already holds is not a conflict.
    expect(await a.presence.claimName(ann, 'anna', 'anna', undefined)).toBe(true);
    // A name a local client holds (registered here, its record not written yet) is refused on this node.
    const zed = a.client('zed');
    const other = a.client('guest-c');
    expect(await a.presence.claimName(other, 'zed', 'guest-c', undefined)).toBe(false);
    for (const [n, s] of [[a, ann], [b, bo], [a, zed], [a, other]] as const) {
      n.local.registry.remove(s);
      await n.presence.drop(s.id, s.name);
    }
  });

  it('who lists every node\'s clients: a topic its matching subscribers, a wildcard its exact holders; find by id or name; drop removes a client and frees its name', async () => {
    const wild = a.client('wild');
    const exact = b.client('exact');
    const elsewhere = b.client('elsewhere');
    for (const [n, s] of [[a, wild], [b, exact], [b, elsewhere]] as const) expect(await n.presence.claimName(s, s.name, '', undefined)).toBe(true);
    await a.sub(wild, 'room/+');
    await b.sub(exact, 'room/1');
    await b.sub(elsewhere, 'hall');
    const names = async (n: PartsNode, topic: string | undefined) => {
      const answer = await n.presence.who(topic, 0, 100, false, undefined);
      if (answer instanceof ProtocolError) throw new Error(answer.message);
      return { names: answer.page.members.map((c) => c.name).sort(), listed: answer.listed };
    };
    expect(await names(a, 'room/1')).toEqual({ names: ['exact', 'wild'], listed: 3 }); // what a publish to room/1 reaches
    expect(await names(b, 'room/+')).toEqual({ names: ['wild'], listed: 3 }); // who holds that filter exactly
    expect(await names(b, undefined)).toEqual({ names: ['elsewhere', 'exact', 'wild'], listed: 3 });
    // Lookups from the other node, by name and by id, name the node that holds the client.
    expect(await a.presence.find('exact', undefined)).toEqual({ id: exact.id, name: 'exact', node: b.node.id });
    expect(await b.presence.find(wild.id, undefined)).toEqual({ id: wild.id, name: 'wild', node: a.node.id });
    expect(await a.presence.find('nobody', undefined)).toBeUndefined();

    b.local.registry.remove(exact);
    await b.presence.drop(exact.id, 'exact');
    expect(await a.presence.find('exact', undefined)).toBeUndefined();
    expect(await a.presence.find(exact.id, undefined)).toBeUndefined();
    expect(await names(a, 'room/1')).toEqual({ names: ['wild'], listed: 2 });
    const taker = a.client('guest-t');
    expect(await a.presence.claimName(taker, 'exact', 'guest-t', undefined)).toBe(true);
    for (const [n, s] of [[a, wild], [b, elsewhere], [a, taker]] as const) {
      n.local.registry.remove(s);
      await n.presence.drop(s.id, s.name);
    }
  });

  it('presence events: every node, the announcer included, hears each one once, in order, with the subject\'s meta', async () => {
    const pat = a.client('pat');
    Object.assign(pat, { publicInfo: () => ({ id: pat.id, name: pat.name, transport: pat.transport, meta: { desk: 4 } }) });
    const from = [a.heard.length, b.heard.length];
    a.presence.announce('join', pat, 'porch');
    a.presence.announce('rename', pat, 'porch', 'patricia');
    a.presence.announce('idle', pat, 'porch');
    a.presence.announce('leave', pat, 'porch');
    await until(() => a.heard.length - from[0]! >= 4 && b.heard.length - from[1]! >= 4, 'four events on both nodes');
    for (const [n, i] of [[a, from[0]!], [b, from[1]!]] as const) {
      const got = n.heard.slice(i);
      expect(got.map((p) => [p.e, p.f, p.o])).toEqual([['join', 'porch', undefined], ['rename', 'porch', 'patricia'], ['idle', 'porch', undefined], ['leave', 'porch', undefined]]);
      expect(got.every((p) => p.c.id === pat.id && p.c.name === 'pat' && (p.c.meta as { desk: number }).desk === 4)).toBe(true);
    }
    // A barrier on each node proves nothing more was coming.
    await Promise.all([a.broker.barrier(), b.broker.barrier()]);
    expect([a.heard.length - from[0]!, b.heard.length - from[1]!]).toEqual([4, 4]);
    a.local.registry.remove(pat);
  });

  it('a subscription ready on one node receives, in seq order, every message published on the other after it; each publisher\'s node counts its own deliveries', async () => {
    const reader = b.client('reader');
    await b.sub(reader, 'feed/1');
    // Pipelined: twenty publishes in flight at once, in one turn.
    const results = (await Promise.all(Array.from({ length: 20 }, (_, i) => a.broker.publish('feed/1', i + 1, null, true, undefined, undefined)))).map(ok);
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(new Set(results.map((r) => r.epoch)).size).toBe(1);
    expect(results.every((r) => r.delivered === 0)).toBe(true); // nobody on a's node holds feed/1
    await b.broker.barrier(); // everything published before it has reached b's subscribers
    expect(msgs(reader, 'feed/1').map((m) => [m.seq, m.data])).toEqual(results.map((r, i) => [r.seq, i + 1]));

    // A subscriber on the publisher's node: the result waits for its own delivery there, and counts it (not b's).
    const local = a.client('local');
    await a.sub(local, 'feed/+');
    const r = ok(await a.broker.publish('feed/1', 'mine', null, true, undefined, undefined));
    expect(r).toMatchObject({ seq: 21, delivered: 1 });
    expect(msgs(local, 'feed/1').map((m) => m.data)).toEqual(['mine']); // there before the result
    await b.broker.barrier();
    expect(msgs(reader, 'feed/1').at(-1)).toMatchObject({ seq: 21, data: 'mine' });
    for (const [n, s] of [[b, reader], [a, local]] as const) {
      n.local.subscriptions.detach(s);
      n.local.registry.remove(s);
    }
  });

  it('a direct to a client of another node reaches it there; to a node that nobody is listening for it is not received', async () => {
    const to = b.client('to');
    expect(await a.broker.direct(b.node.id, to.id, { id: 'c0', name: 'from' }, '{"hi":1}')).toBe(true);
    await until(() => to.frames.some((f) => f.op === 'direct'), 'the direct on b');
    expect(to.frames.find((f) => f.op === 'direct')).toMatchObject({ op: 'direct', from: { id: 'c0', name: 'from' }, data: { hi: 1 } });
    expect(await a.broker.direct('no-such-node', to.id, { id: 'c0', name: 'from' }, '1')).toBe(false);
    b.local.registry.remove(to);
  });

  it('Redis unreachable: who, find, a rename and a publish answer unavailable; a name at join is checked locally', async () => {
    const sam = a.client('sam');
    await redis.stop();
    await until(() => !a.node.up, 'node a sees Redis gone');
    const unavailable = { code: 'unavailable' };
    expect(await a.presence.who(undefined, 0, 10, false, 7)).toMatchObject({ ...unavailable, id: 7 });
    expect(await a.presence.find('sam', 8)).toMatchObject({ ...unavailable, id: 8 });
    expect(await a.presence.claimName(sam, 'samuel', 'sam', 9)).toMatchObject({ ...unavailable, id: 9 });
    expect(await a.broker.publish('feed/1', 1, null, true, 10, undefined)).toMatchObject({ ...unavailable, id: 10 });
    // A joining client's name: free here is enough (the re-assert writes it later); held here is not.
    const joining = fake('c999999');
    expect(await a.presence.claimAtJoin(joining, 'newcomer', 'guest-9')).toEqual({ name: 'newcomer', problem: null });
    expect(await a.presence.claimAtJoin(joining, 'sam', 'guest-9')).toMatchObject({ name: 'guest-9', problem: { code: 'name_taken' } });
    // Subscriptions are applied locally at once while the subscriber is away (its catch-up covers them later): the
    // sub is done with Redis still stopped, so it waited neither for the subscriber to come back nor for a command to
    // time out (60 s here, longer than this test may take).
    await until(() => !a.node.listening, 'node a\'s subscriber gone');
    await a.sub(sam, 'quiet/1');
    expect([...a.local.index.subscribersOf('quiet/1')]).toEqual([sam]);
    expect(a.node.up || a.node.listening).toBe(false); // Redis still away
  });
});

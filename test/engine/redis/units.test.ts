// The Redis engine's units on their own, with recording stand-ins for Redis (the cluster tests run them on a real
// one): client id blocks, per-session request order, the bus cursors and their gap fill, the presence relay's hold
// and flush, the barrier, this node's own delivery counts, the resume from streams, and the publish batch (one
// script call per turn and slot, each publish answered on its own).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { IdBlocks } from '../../../src/engine/redis/id-blocks.js';
import { RequestOrder } from '../../../src/engine/redis/request-order.js';
import { Cursors, parseBusMessage, type BusMessage } from '../../../src/engine/redis/cursors.js';
import { MAX_HELD_PRESENCE_PER_CLIENT, PresenceRelay } from '../../../src/engine/redis/presence-relay.js';
import { Barrier } from '../../../src/engine/redis/barrier.js';
import { messageKey, OwnDeliveries } from '../../../src/engine/redis/own-deliveries.js';
import { resumeFromStreams } from '../../../src/engine/redis/stream-resume.js';
import { MAX_MESSAGES, PublishBatch } from '../../../src/engine/redis/publish-batch.js';
import { resumeTerms } from '../../../src/engine/resume.js';
import { ProtocolError } from '../../../src/protocol/errors.js';
import { ScriptRunner, type ScriptConnection } from '../../../src/engine/redis/script-runner.js';
import { isRedisDown } from '../../../src/engine/redis/refusals.js';
import type { FrameOf } from '../../../src/protocol/frames.js';
import type { SessionMailbox } from '../../../src/engine/engine.js';

const log = pino({ level: 'silent' });
const tick = () => new Promise((r) => setImmediate(r));

/** A stream entry's value as the publish script stores it: `m` + node, transport, addr, noEcho, then the frame. */
const entry = (topic: string, seq: number, epoch = 'e1') => `mn1\nws\n\n\n${JSON.stringify({ op: 'msg', topic, seq, epoch, data: seq })}`;

describe('IdBlocks', () => {
  it('ids come from reserved blocks, a spare is reserved at half, none is given twice', async () => {
    let counter = 0;
    const reserve = async (n: number) => (counter += n);
    const ids = new IdBlocks(reserve, log, 10);
    await ids.reserveBlock();
    const seen = new Set<string>();
    for (let i = 0; i < 35; i++) {
      seen.add(ids.take());
      await tick(); // lets a spare reservation land
    }
    expect(seen.size).toBe(35);
    expect([...seen].every((id) => /^c\d+$/.test(id))).toBe(true);
    expect(ids.reservedUpTo).toBeGreaterThanOrEqual(35);
    expect(counter).toBeGreaterThanOrEqual(40); // four blocks of ten at least were reserved
  });

  it('a second node on the same counter never repeats an id', async () => {
    let counter = 0;
    const reserve = async (n: number) => (counter += n);
    const a = new IdBlocks(reserve, log, 8);
    const b = new IdBlocks(reserve, log, 8);
    await a.reserveBlock();
    await b.reserveBlock();
    const all: string[] = [];
    for (let i = 0; i < 30; i++) {
      all.push(a.take(), b.take());
      await tick();
    }
    expect(new Set(all).size).toBe(all.length);
  });
});

describe('RequestOrder', () => {
  const session = { id: 'c1' };
  const make = (maxInflight: number, answers: string[]) =>
    new RequestOrder<typeof session>({
      maxInflight,
      fail: (_s, err) => answers.push(`${err.code} ${String(err.id)}`),
      refusal: (err, id) => (String(err).includes('down') ? new ProtocolError('unavailable', 'down', id) : undefined),
      log,
    });

  it('a session\'s requests finish in arrival order whatever each waits for; errors are answered in their turn', async () => {
    const answers: string[] = [];
    const order = make(10, answers);
    const later = (ms: number, say: string) => () => new Promise<void>((r) => setTimeout(() => (answers.push(say), r()), ms));
    order.enqueue(session, later(30, 'first'), { id: 1 });
    order.enqueue(session, () => Promise.reject(new Error('redis down')), { id: 2 });
    order.enqueue(session, later(1, 'third'), { id: 3 });
    order.enqueue(session, () => Promise.reject(new Error('bug')), { id: 4 });
    await order.settle(1000);
    expect(answers).toEqual(['first', 'unavailable 2', 'third', 'internal 4']);
  });

  it('over maxInflight a request is answered unavailable in its turn; lifecycle steps (not counted) never are', async () => {
    const answers: string[] = [];
    const order = make(1, answers);
    let open = () => {};
    order.enqueue(session, () => new Promise<void>((r) => (open = r)), { id: 1 });
    expect(order.full).toBe(true);
    order.enqueue(session, () => void answers.push('second ran'), { id: 2 });
    order.enqueue(session, () => void answers.push('leave ran'), { counted: false });
    expect(order.waitingOthers(session)).toBe(true);
    await tick(); // the first request is running
    open();
    await order.settle(1000);
    expect(answers).toEqual(['unavailable 2', 'leave ran']);
    expect(order.full).toBe(false);
    expect(order.waitingOthers(session)).toBe(false);
  });
});

describe('RequestOrder: requests that start early (pubs)', () => {
  it('behind nothing but pubs, each starts at once and is answered in order; behind a sub it waits its turn', async () => {
    const session = { id: 'c1' };
    const order = new RequestOrder<typeof session>({ maxInflight: 10, fail: () => undefined, refusal: () => undefined, log });
    const started: string[] = [];
    const answered: string[] = [];
    const gates = new Map<string, () => void>();
    const pub = (name: string) =>
      order.enqueueEarly(
        session,
        () => (started.push(name), new Promise<string>((r) => gates.set(name, () => r(name)))),
        (result) => answered.push(result),
      );
    pub('p1');
    pub('p2');
    expect(started).toEqual(['p1', 'p2']); // both sent before either was answered
    gates.get('p2')!();
    await tick();
    expect(answered).toEqual([]); // p2's reply waits for p1's
    gates.get('p1')!();
    await expect.poll(() => answered).toEqual(['p1', 'p2']);
    let openSub = () => {};
    order.enqueue(session, () => new Promise<void>((r) => (openSub = r)));
    pub('p3');
    expect(started).toEqual(['p1', 'p2']); // behind the sub: not started
    await tick();
    openSub();
    await expect.poll(() => started).toEqual(['p1', 'p2', 'p3']);
    gates.get('p3')!();
    await expect.poll(() => answered).toEqual(['p1', 'p2', 'p3']);
  });
});

describe('Cursors', () => {
  const make = (stream: Map<string, string[]>, epoch = () => 'e1') => {
    const delivered: number[] = [];
    const reads: string[] = [];
    const stats = { clusterMessagesLost: 0, clusterMessagesStale: 0 };
    const cursors = new Cursors({
      stats,
      deliver: (m) => delivered.push(m.seq),
      read: async (topic, from, count) => {
        reads.push(`${topic} ${from}+${count}`);
        const all = stream.get(topic) ?? [];
        const flat = all.slice(from - 1, from - 1 + count).flatMap((v, i) => [`0-${from + i}`, v]);
        return [String(all.length), epoch(), null, ...flat];
      },
      closed: () => false,
      log,
      retryMs: 5,
    });
    return { cursors, delivered, reads, stats };
  };
  const bus = (topic: string, seq: number, epoch = 'e1'): BusMessage => parseBusMessage(entry(topic, seq, epoch).slice(1))!;

  it('in order: delivered at once, a duplicate is dropped', () => {
    const { cursors, delivered, reads } = make(new Map());
    for (const seq of [1, 2, 2, 3]) cursors.receive(bus('a', seq));
    expect(delivered).toEqual([1, 2, 3]);
    expect(reads).toEqual([]);
  });

  it('a gap is filled from the stream before the held message, in seq order', async () => {
    const stream = new Map([['a', [1, 2, 3, 4, 5].map((s) => entry('a', s))]]);
    const { cursors, delivered, reads } = make(stream);
    cursors.receive(bus('a', 1));
    cursors.receive(bus('a', 5)); // 2..4 lost on the bus
    await expect.poll(() => delivered).toEqual([1, 2, 3, 4, 5]);
    expect(reads[0]).toBe('a 2+3'); // exactly the gap, then (a full read) whether more follows
  });

  it('a gap the stream no longer holds is passed and counted', async () => {
    const stream = new Map([['a', [entry('a', 1)]]]); // 2 and 3 trimmed away
    const { cursors, delivered, stats } = make(stream);
    cursors.receive(bus('a', 1));
    cursors.receive(bus('a', 4));
    await expect.poll(() => delivered).toEqual([1, 4]);
    expect(cursors.gapsSkipped).toBe(2);
    expect(stats.clusterMessagesLost).toBe(2); // switchboard_cluster_messages_lost_total
  });

  it('a fill that a trimmed stream carries past a held message delivers each once and ends (it used to spin for ever)', async () => {
    const delivered: number[] = [];
    const cursors = new Cursors({
      deliver: (m) => delivered.push(m.seq),
      // The stream holds 4..6 only (3 was trimmed): a read from 3 starts at 4 and runs `count` entries from there.
      read: async (_topic, from, count) => ['6', 'e1', null, ...[4, 5, 6].filter((s) => s >= Math.max(from, 4)).slice(0, count).flatMap((s) => [`0-${s}`, entry('a', s)])],
      closed: () => false,
      log,
      retryMs: 5,
    });
    for (const seq of [1, 2, 5]) cursors.receive(bus('a', seq)); // 3 and 4 lost on the bus: 5 held, filled from 3
    await expect.poll(() => delivered).toEqual([1, 2, 4, 5, 6]);
    expect(cursors.gapsSkipped).toBe(1); // 3, said and counted
  });

  it('a new epoch of a followed topic (a failover) starts at its seq 1: what the bus did not bring is filled from the stream', async () => {
    let epoch = 'e1';
    const stream = new Map([['a', [1, 2].map((s) => entry('a', s))]]);
    const { cursors, delivered } = make(stream, () => epoch);
    cursors.receive(bus('a', 1));
    cursors.receive(bus('a', 2));
    // The shard failed over; 1 and 2 of the new epoch were published before this node subscribed on the new master.
    epoch = 'e2';
    stream.set('a', [1, 2, 3].map((s) => entry('a', s, 'e2')));
    cursors.receive(bus('a', 3, 'e2'));
    await expect.poll(() => delivered).toEqual([1, 2, 1, 2, 3]);
  });

  it('a topic listened on from seq 5: its first message 8 brings 6 and 7 from the stream; one published between the SUBSCRIBE and the meta read is delivered', async () => {
    const stream = new Map([['a', [1, 2, 3, 4, 5, 6, 7, 8].map((s) => entry('a', s))], ['b', [1, 2, 3].map((s) => entry('b', s))]]);
    const { cursors, delivered } = make(stream);
    cursors.listening('a', 'e1', 5);
    cursors.receive(bus('a', 8)); // 6 and 7 lost on the bus (the subscriber connection dropped meanwhile)
    await expect.poll(() => delivered).toEqual([6, 7, 8]);
    delivered.length = 0;
    cursors.listening('b', 'e1', 3); // read after 3 was published: 3 is on its way on the bus, after the SUBSCRIBE
    cursors.receive(bus('b', 3));
    expect(delivered).toEqual([3]);
  });

  it('a baseline taken at a sub\'s ack while the subscriber was away is kept when a later one is read: the catch-up starts there (a new epoch since: at its seq 1)', async () => {
    let epoch = 'e1';
    const stream = new Map([['a', [1, 2, 3, 4, 5].map((s) => entry('a', s))], ['b', [1, 2].map((s) => entry('b', s, 'e2'))]]);
    const { cursors, delivered } = make(stream, () => epoch);
    cursors.listening('a', 'e1', 2); // at the ack
    cursors.listening('a', 'e1', 5); // once the SUBSCRIBE is answered, after 3..5 were published
    cursors.catchUp();
    await expect.poll(() => delivered).toEqual([3, 4, 5]);
    delivered.length = 0;
    epoch = 'e2';
    cursors.listening('b', 'e1', 7); // at the ack
    cursors.listening('b', 'e2', 2); // an epoch that began since (a failover): both of its messages came after the ack
    cursors.catchUp();
    await expect.poll(() => delivered).toEqual([1, 2]);
  });

  it('a topic never published when listened on: an epoch met later is delivered from its seq 1', async () => {
    const stream = new Map([['a', [1, 2, 3].map((s) => entry('a', s))]]);
    const { cursors, delivered } = make(stream);
    cursors.listening('a', '', 0);
    cursors.receive(bus('a', 3));
    await expect.poll(() => delivered).toEqual([1, 2, 3]);
  });

  it('catching up (a subscriber back) fetches what was published on a listened topic no message had come for yet', async () => {
    const stream = new Map([['a', [1, 2, 3, 4].map((s) => entry('a', s))], ['b', [entry('b', 1)]]]);
    const { cursors, delivered } = make(stream);
    cursors.listening('a', 'e1', 2); // 3 and 4 were published while the subscriber was away
    cursors.listening('b', '', 0); // dropped: no longer heard
    cursors.keepOnly((t) => t === 'a');
    cursors.catchUp();
    await expect.poll(() => delivered).toEqual([3, 4]);
    // Followed from there: the bus's next one is delivered, an old one is not.
    cursors.receive(bus('a', 4));
    cursors.receive(bus('a', 5));
    expect(delivered).toEqual([3, 4, 5]);
  });

  it('fillNow reads a followed topic\'s stream at once (an own publish the bus did not bring), also one only listened on', async () => {
    let epoch = 'e1';
    const stream = new Map([['a', [1, 2].map((s) => entry('a', s))], ['b', [1, 2].map((s) => entry('b', s))]]);
    const { cursors, delivered } = make(stream, () => epoch);
    cursors.receive(bus('a', 1));
    cursors.fillNow('a');
    await expect.poll(() => delivered).toEqual([1, 2]);
    // The topic moved to a master that numbers it in a new epoch; this node still listens on the old one.
    epoch = 'e2';
    stream.set('a', [entry('a', 1, 'e2')]);
    cursors.fillNow('a');
    await expect.poll(() => delivered).toEqual([1, 2, 1]);
    cursors.listening('b', 'e1', 1);
    cursors.fillNow('b');
    await expect.poll(() => delivered).toEqual([1, 2, 1, 2]);
  });

  it('catching up (a subscriber back) finds a followed topic in a new epoch and delivers it from seq 1', async () => {
    let epoch = 'e1';
    const stream = new Map([['a', [entry('a', 1)]]]);
    const { cursors, delivered } = make(stream, () => epoch);
    cursors.receive(bus('a', 1));
    epoch = 'e2';
    stream.set('a', [1, 2].map((s) => entry('a', s, 'e2')));
    cursors.catchUp();
    await expect.poll(() => delivered).toEqual([1, 1, 2]);
  });

  it('a message the bus brings while the fill is reading it from the stream is delivered once, and the fill ends', async () => {
    // Seen in test/cluster/redis-cluster-failover.test.ts under load: the fill switched to the new epoch and read from
    // its seq 1; the bus brought seq 1 meanwhile (held, the fill being on); the read delivered it; the held copy stayed
    // behind the cursor and the fill looped without an await, for ever: the node's event loop was stuck.
    let epoch = 'e1';
    const stream = new Map([['a', [entry('a', 1)]]]);
    let reads = 0;
    let release!: () => void;
    const inFlight = new Promise<void>((r) => (release = r));
    let turns = 0; // closed() is asked at every turn of the fill's loop
    const delivered: string[] = [];
    const cursors = new Cursors({
      deliver: (m) => delivered.push(`${m.epoch}:${m.seq}`),
      read: async (topic, from, count) => {
        if (++reads === 2) await inFlight; // the new epoch's read from seq 1
        const all = stream.get(topic) ?? [];
        return [String(all.length), epoch, null, ...all.slice(from - 1, from - 1 + count).flatMap((v, i) => [`0-${from + i}`, v])];
      },
      closed: () => ++turns > 1000,
      log,
      retryMs: 5,
    });
    cursors.receive(bus('a', 1));
    epoch = 'e2';
    stream.set('a', [1, 2].map((s) => entry('a', s, 'e2')));
    cursors.catchUp();
    await expect.poll(() => reads).toBe(2);
    cursors.receive(bus('a', 1, 'e2'));
    release();
    await expect.poll(() => delivered).toEqual(['e1:1', 'e2:1', 'e2:2']);
    expect(turns).toBeLessThan(10);
    cursors.receive(bus('a', 3, 'e2'));
    expect(delivered.at(-1)).toBe('e2:3'); // in order at once: the fill is over
  });

  it('a gap the stream no longer holds up to a held message: the held one is delivered once', async () => {
    // 2 trimmed from the stream; 3 came on the bus (held) and is in the stream too.
    const stream = new Map([['a', [entry('a', 1), entry('a', 3)]]]);
    const delivered: number[] = [];
    const cursors = new Cursors({
      deliver: (m) => delivered.push(m.seq),
      read: async (topic, from, count) => {
        const after = (stream.get(topic) ?? []).filter((e) => parseBusMessage(e.slice(1))!.seq >= from).slice(0, count);
        return ['2', 'e1', null, ...after.flatMap((v) => [`0-${parseBusMessage(v.slice(1))!.seq}`, v])];
      },
      closed: () => false,
      log,
      retryMs: 5,
    });
    cursors.receive(bus('a', 1));
    cursors.receive(bus('a', 3));
    await expect.poll(() => cursors.gapsSkipped).toBe(1);
    cursors.receive(bus('a', 4));
    expect(delivered).toEqual([1, 3, 4]);
  });
});

describe('parseBusMessage: the MQTT marks of the transport field', () => {
  const marks = (transport: string) => {
    const m = parseBusMessage(`n1\n${transport}\n1.2.3.4:5\n\n${JSON.stringify({ op: 'msg', topic: 't', seq: 1, epoch: 'e1', from: { id: 'c1', name: 'a' }, data: 1 })}`)!;
    return { qos: m.out.maxQos, retain: m.out.retain, transport: m.out.sender?.transport };
  };
  it('`<qos>` then `r` for the retain flag; none (and entries from before the flag) reads as QoS 2 without it', () => {
    expect(marks('ws')).toEqual({ qos: 2, retain: false, transport: 'ws' });
    expect(marks('mqtt:0')).toEqual({ qos: 0, retain: false, transport: 'mqtt' });
    expect(marks('mqtt:1')).toEqual({ qos: 1, retain: false, transport: 'mqtt' });
    expect(marks('mqtt:0r')).toEqual({ qos: 0, retain: true, transport: 'mqtt' });
    expect(marks('mqtt:1r')).toEqual({ qos: 1, retain: true, transport: 'mqtt' });
    expect(marks('mqtt:2r')).toEqual({ qos: 2, retain: true, transport: 'mqtt' });
  });
});

describe('PresenceRelay', () => {
  const subject = (id: string) => ({ id, name: id, transport: 'ws' as const, addr: '1.2.3.4:5' });

  it('held while Redis is down (bounded per client), then published in order at once', async () => {
    let up = false;
    const published: string[] = [];
    const batches: string[][] = [];
    const relay = new PresenceRelay({ up: () => up, publish: async (p) => (published.push(p), true), publishAll: async (ps) => void batches.push(ps), log });
    relay.publish('join', subject('c1'), 'a');
    relay.publish('leave', subject('c1'), 'a');
    for (let i = 0; i < MAX_HELD_PRESENCE_PER_CLIENT + 5; i++) relay.publish('rename', subject('c2'), 'b', 'x');
    expect(published).toEqual([]);
    expect(relay.pending).toBe(true);
    up = true;
    relay.publish('join', subject('c3'), 'a'); // behind the held ones, not before them
    relay.flush();
    expect(published).toEqual([]);
    expect(batches).toHaveLength(1);
    const events = batches[0]!.map((p) => JSON.parse(p.slice(1)) as { e: string; c: { id: string } });
    expect(events.slice(0, 2).map((e) => `${e.e} ${e.c.id}`)).toEqual(['join c1', 'leave c1']);
    expect(events.filter((e) => e.c.id === 'c2')).toHaveLength(MAX_HELD_PRESENCE_PER_CLIENT);
    expect(events.at(-1)!.c.id).toBe('c3');
    expect(relay.pending).toBe(false);
    relay.publish('join', subject('c4'), 'a');
    expect(published).toHaveLength(1);
  });

  it('discard drops what is held and says how much was lost', () => {
    const relay = new PresenceRelay({ up: () => false, publish: async () => true, publishAll: async () => undefined, log });
    for (let i = 0; i < MAX_HELD_PRESENCE_PER_CLIENT + 3; i++) relay.publish('join', subject('c1'), `t${i}`);
    expect(relay.discard()).toBe(MAX_HELD_PRESENCE_PER_CLIENT + 3);
    expect(relay.pending).toBe(false);
  });
});

describe('Barrier', () => {
  it('waiters resolve when this node\'s token comes back through every connection; later waiters share the next token', async () => {
    const sent: string[] = [];
    let barrier: Barrier;
    const conn = (name: string) => ({ publish: async (_channel: string, message: string) => void sent.push(`${name} ${message}`) });
    const masters = [conn('m1'), conn('m2')];
    barrier = new Barrier({ via: () => masters, channel: 'sb:node:x', up: () => true, waitMs: 60_000 });
    const done: string[] = [];
    void barrier.wait().then(() => done.push('first'));
    void barrier.wait().then(() => done.push('second'));
    void barrier.wait().then(() => done.push('third'));
    await tick();
    expect(sent).toEqual(['m1 b1', 'm2 b1']);
    barrier.arrived(1);
    await tick();
    expect(done).toEqual([]); // one master's token is still out
    barrier.arrived(1);
    await tick();
    expect(done).toEqual(['first']);
    expect(sent.slice(2)).toEqual(['m1 b2', 'm2 b2']);
    barrier.arrived(2);
    barrier.arrived(2);
    await tick();
    expect(done).toEqual(['first', 'second', 'third']);
  });

  it('resolves at once while Redis is down, and after waitMs when a token never comes back', async () => {
    let up = false;
    const barrier = new Barrier({ via: () => [{ publish: async () => 1 }], channel: 'c', up: () => up, waitMs: 20 });
    await barrier.wait();
    up = true;
    const started = Date.now();
    await barrier.wait();
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
  });
});

describe('OwnDeliveries', () => {
  it('the count meets its publisher whichever comes first; a topic no longer heard answers 0', async () => {
    const own = new OwnDeliveries(60_000);
    own.delivered(messageKey('a', 'e', 1), 3); // the bus before the script's reply
    expect(await own.wait(messageKey('a', 'e', 1))).toBe(3);
    const second = own.wait(messageKey('a', 'e', 2)); // the reply before the bus
    own.delivered(messageKey('a', 'e', 2), 5);
    expect(await second).toBe(5);
    const unheard = own.wait(messageKey('b', 'e', 1));
    own.keepOnly((topic) => topic !== 'b');
    expect(await unheard).toBe(0);
  });

  it('not brought by the bus in time: the stream is asked (late), and what it delivers is the count; nothing at all: 0', async () => {
    const own = new OwnDeliveries(20);
    const asked: string[] = [];
    const found = own.wait(messageKey('a', 'e', 1), () => {
      asked.push('a');
      setTimeout(() => own.delivered(messageKey('a', 'e', 1), 2), 5); // the fill delivered it
    });
    expect(await found).toBe(2);
    const lost = own.wait(messageKey('a', 'e', 2), () => asked.push('a again'));
    expect(await lost).toBe(0);
    expect(asked).toEqual(['a', 'a again']);
  });
});

describe('resumeFromStreams', () => {
  const mailbox: SessionMailbox = { push: () => true, capacity: 1000, depth: 0, byteCapacity: 1 << 20, bytes: 0, acceptsDirect: () => true, tail: undefined, replaceTail: () => undefined };
  const store = (topics: Record<string, number>, kept = 100, lost = new Set<string>()) => ({
    topics: async () => Object.keys(topics),
    read: async (topic: string, from: number, count: number) => {
      const last = topics[topic];
      if (last === undefined) return [null, null, null];
      const flat: string[] = [];
      for (let s = Math.max(from, last - kept + 1); s <= last && flat.length < 2 * count; s++) flat.push(`0-${s}`, entry(topic, s));
      return [String(last), 'e1', lost.has(topic) ? '1' : null, ...flat];
    },
    historySize: kept,
  });
  const sub = (fields: Partial<FrameOf<'sub'>>): FrameOf<'sub'> => ({ op: 'sub', topic: 'a', ...fields }) as FrameOf<'sub'>;
  const terms = (frame: FrameOf<'sub'>) => resumeTerms(frame, 'L', mailbox, { maxMessages: 50, maxBytes: 1 << 20 });

  it('replays what the client missed, in order, and says recovered', async () => {
    const frame = sub({ since: 3, epoch: 'e1' });
    const r = await resumeFromStreams(store({ a: 6 }), frame, terms(frame), 'L');
    expect(r.ack).toMatchObject({ recovered: true, life: 'L', positions: { a: { seq: 6, epoch: 'e1' } } });
    expect(r.messages.map((m) => (m.frame as { seq: number }).seq)).toEqual([4, 5, 6]);
  });

  it('the verdicts: trimmed history, another epoch, over the replay limit', async () => {
    let frame = sub({ since: 3, epoch: 'e1' });
    const trimmed = await resumeFromStreams(store({ a: 20 }, 5), frame, terms(frame), 'L');
    expect(trimmed.ack).toMatchObject({ recovered: false, reason: 'history_trimmed', missed: { a: 'history_trimmed' }, positions: { a: { seq: 20 } } });
    // What the stream still holds is replayed all the same (the miss named); more than the budget: nothing of it.
    expect(trimmed.messages.map((m) => (m.frame as { seq: number }).seq)).toEqual([16, 17, 18, 19, 20]);
    const over = await resumeFromStreams(store({ a: 300 }, 100), frame, terms(frame), 'L');
    expect(over.ack).toMatchObject({ recovered: false, missed: { a: 'history_trimmed' } });
    expect(over.messages).toEqual([]);
    frame = sub({ since: 3, epoch: 'e0' });
    expect((await resumeFromStreams(store({ a: 6 }), frame, terms(frame), 'L')).ack).toMatchObject({ recovered: false, reason: 'epoch_changed' });
    frame = sub({ since: 3, epoch: 'e1' });
    const r = await resumeFromStreams(store({ a: 200 }, 500), frame, terms(frame), 'L');
    expect(r.ack).toMatchObject({ recovered: false, reason: 'replay_limit' });
    expect(r.messages).toEqual([]);
  });

  it('a wildcard: only matching topics, each from its own position; an unknown position is not vouched for', async () => {
    const frame = sub({ topic: 'room/#', since: { 'room/1': 1, 'room/9': 4 }, epoch: { 'room/1': 'e1', 'room/9': 'e1' }, life: 'L' });
    const r = await resumeFromStreams(store({ 'room/1': 2, 'room/2': 1, other: 5 }), frame, terms(frame), 'L');
    expect(r.messages.map((m) => `${(m.frame as { topic: string }).topic}:${(m.frame as { seq: number }).seq}`)).toEqual(['room/1:2', 'room/2:1']);
    expect(r.ack).toMatchObject({ recovered: false, missed: { 'room/9': 'unknown_position' } });
    expect([...r.positions.keys()]).toEqual(['room/1', 'room/2']);
  });

  it('a wildcard: an unlisted topic whose sequence restarted over an older one (a failover) is not vouched for, though the life is the same', async () => {
    const frame = sub({ topic: 'w/+', since: { 'w/other': 1 }, epoch: { 'w/other': 'e1' }, life: 'L' });
    const r = await resumeFromStreams(store({ 'w/other': 1, 'w/f': 1, 'w/new': 2 }, 100, new Set(['w/f'])), frame, terms(frame), 'L');
    expect(r.ack).toMatchObject({ recovered: false, missed: { 'w/f': 'unknown_position' } });
    expect(Object.keys(r.ack.missed as object)).toEqual(['w/f']); // w/new never restarted: replayed from its start
    expect(r.messages.map((m) => `${(m.frame as { topic: string }).topic}:${(m.frame as { seq: number }).seq}`)).toEqual(['w/new:1', 'w/new:2']);
  });
});

describe('PublishBatch', () => {
  /** A stand-in for the script call: records each call's keys and message count, answers as the test says. */
  /** The topic (its meta key) of each message of a call, in order, as the script reads them. */
  const messagesOf = (keys: string[], args: string[]) => {
    const topics = Number(args[3]);
    const out: string[] = [];
    // (the last argument is the lineage mode)
    for (let a = 4 + 4 * topics; a < args.length - 1; a += 3) out.push(keys[2 * (Math.abs(Number(args[a])) - 1)]!);
    return out;
  };
  const make = (opts: { slot?: (key: string) => number; ready?: () => boolean | Promise<boolean>; answer?: (keys: string[], call: number) => Promise<unknown>; intervalMs?: number } = {}) => {
    const calls: string[][] = [];
    const flushes: (() => void)[] = [];
    /** Flushes asked for after a delay (intervalMs), with the delay; `clock` is the batch's time. */
    const delayed: [flush: () => void, ms: number][] = [];
    const clock = { now: 0 };
    const failures: unknown[] = [];
    const batch = new PublishBatch({
      run: (keys, args) => {
        const messages = messagesOf(keys, args);
        calls.push(messages);
        const n = calls.length;
        return opts.answer ? opts.answer(keys, n) : Promise.resolve(messages.flatMap((k, i) => [i + 1, `${k}@${n}`]));
      },
      head: () => ['100', '1000', '60000'],
      fresh: () => 'e',
      slot: opts.slot,
      ready: opts.ready ?? (() => true),
      failed: (err) => failures.push(err),
      schedule: (f) => flushes.push(f),
      intervalMs: opts.intervalMs,
      delay: (f, ms) => delayed.push([f, ms]),
      now: () => clock.now,
    });
    const pub = (topic: string, id?: number) => batch.add({ topic: { keys: [topic, `${topic}:log`], head: 'h', channel: 'c', family: 'f' }, tail: 't', prefix: 'p', id }).then(
      (r) => (r instanceof ProtocolError ? `${r.code} ${String(r.id)}` : r),
      (err: Error) => `fault ${err.message}`,
    );
    return { batch, calls, flushes, failures, pub, delayed, clock };
  };

  it('the publishes of one turn go in one call, in order; each gets its own answer, a failing one its own error', async () => {
    const { calls, flushes, pub } = make({
      // The script's flat reply: two items per message (seq, epoch; or 0, its error).
      answer: async () => [1, 'e', 0, 'WRONGTYPE Operation against a key holding the wrong kind of value', 2, 'e', 0, "OOM command not allowed when used memory > 'maxmemory'."],
    });
    const answers = Promise.all([pub('a', 1), pub('b', 2), pub('a', 3), pub('c', 4)]);
    expect(calls).toEqual([]); // nothing sent before the turn ends
    expect(flushes).toHaveLength(1); // one flush for the turn
    flushes[0]!();
    expect(calls).toEqual([['a', 'b', 'a', 'c']]);
    expect(await answers).toEqual([[1, 'e'], 'fault WRONGTYPE Operation against a key holding the wrong kind of value', [2, 'e'], 'unavailable 4']);
  });

  it('a topic\'s keys and arguments (its fresh epoch too) go once per call; idempotency keys follow the topics\' keys, in message order; the lineage key and mode last', async () => {
    const sent: [string[], string[], string[] | undefined][] = [];
    let epochs = 0;
    const batch = new PublishBatch({
      run: async (keys, args, asText) => (sent.push([keys, args, asText?.(args)]), [1, 'e', -2, 'e', 1, 'e']),
      lineageKey: 'sb:lineage',
      head: () => ['100', '1000', '60000'],
      fresh: () => `e${++epochs}`,
      ready: () => true,
      failed: () => undefined,
      schedule: (f) => queueMicrotask(f),
    });
    const topic = (t: string) => ({ keys: [t, `${t}:log`] as [string, string], head: `h${t}`, channel: `c${t}`, family: 'f' });
    const answers = await Promise.all([
      batch.add({ topic: topic('a'), tail: 't1', prefix: 'p' }),
      batch.add({ topic: topic('a'), tail: 't2', prefix: 'p', key: 'a:k:x' }),
      batch.add({ topic: topic('b'), tail: 't3', prefix: 'p' }),
    ]);
    // -seq: the key was held (the first publish's position, marked as such)
    expect(answers).toEqual([[1, 'e'], [2, 'e', 1], [1, 'e']]);
    const args = ['100', '1000', '60000', '2', 'e1', 'ha', 'ca', 'f', 'e2', 'hb', 'cb', 'f', '1', 't1', 'p', '-1', 't2', 'p', '2', 't3', 'p'];
    expect(sent).toEqual([[
      ['a', 'a:log', 'b', 'b:log', 'a:k:x', 'sb:lineage'],
      // by SHA the lineage key is trusted; a call with the script's text (EVAL) reads INFO and writes it
      [...args, 'trust'],
      [...args, 'load'],
    ]]);
  });

  it('on a Redis Cluster a batch is split per slot (every key of one call in one slot), each slot in its order', async () => {
    const { calls, flushes, pub } = make({ slot: (key) => (key.startsWith('x') ? 1 : 2) });
    const answers = Promise.all([pub('x1'), pub('y1'), pub('x2'), pub('y2'), pub('x3')]);
    flushes[0]!();
    expect(calls).toEqual([['x1', 'x2', 'x3'], ['y1', 'y2']]);
    expect(await answers).toEqual([[1, 'x1@1'], [1, 'y1@2'], [2, 'x2@1'], [2, 'y2@2'], [3, 'x3@1']]);
  });

  it('batches go out in the order of their turns; a turn over MAX_MESSAGES is cut into calls in order', async () => {
    const { calls, flushes, pub } = make();
    const first = pub('t');
    flushes[0]!();
    const second = [pub('u'), pub('v')];
    flushes[1]!();
    expect(calls).toEqual([['t'], ['u', 'v']]);
    expect(await first).toEqual([1, 't@1']);
    expect(await Promise.all(second)).toEqual([[1, 'u@2'], [2, 'v@2']]);
    const many = Array.from({ length: MAX_MESSAGES + 10 }, (_, i) => pub(`m${i}`));
    // A full batch goes at once (before the turn ends); the rest waits for the turn's flush (asked for anew: the one
    // asked for before the cut has nothing left to send).
    expect(calls.slice(2).map((c) => c.length)).toEqual([MAX_MESSAGES]);
    flushes[2]!();
    expect(calls.slice(2).map((c) => c.length)).toEqual([MAX_MESSAGES]);
    flushes[3]!();
    expect(calls.slice(2).map((c) => c.length)).toEqual([MAX_MESSAGES, 10]);
    expect(calls.slice(2).flat()).toEqual(Array.from({ length: MAX_MESSAGES + 10 }, (_, i) => `m${i}`));
    expect((await Promise.all(many)).map((r) => (r as [number, string])[1])).toEqual(Array.from({ length: MAX_MESSAGES + 10 }, (_, i) => `m${i}@${i < MAX_MESSAGES ? 3 : 4}`));
  });

  it('with an interval, publishes made within it of the last call wait for the rest of it and go as one call; a quiet node sends after the turn', async () => {
    const { calls, flushes, delayed, clock, pub } = make({ intervalMs: 5 });
    const first = pub('a'); // nothing sent for 5 ms: after this turn, as without an interval
    expect([flushes.length, delayed.length]).toEqual([1, 0]);
    flushes[0]!();
    expect(calls).toEqual([['a']]);
    clock.now = 1.5;
    const waiting = [pub('a'), pub('b')]; // 1.5 ms after the last call: wait for the other 3.5 (rounded up to whole ms)
    clock.now = 3;
    waiting.push(pub('a')); // another turn within it: joins the same call
    expect([flushes.length, delayed.map(([, ms]) => ms)]).toEqual([1, [4]]);
    expect(calls).toHaveLength(1);
    clock.now = 5.5;
    delayed[0]![0](); // the wait is over: flushed after that turn's I/O
    expect(calls).toHaveLength(1);
    flushes.at(-1)!();
    expect(calls).toEqual([['a'], ['a', 'b', 'a']]);
    expect(await first).toEqual([1, 'a@1']);
    expect(await Promise.all(waiting)).toEqual([[1, 'a@2'], [2, 'b@2'], [3, 'a@2']]);
    clock.now = 20; // quiet again: the next publish goes after its turn
    const late = pub('c');
    expect([flushes.length, delayed.length]).toEqual([3, 1]);
    flushes.at(-1)!();
    expect(await late).toEqual([1, 'c@3']);
  });

  it('with an interval, MAX_MESSAGES waiting go at once; the flush they were waiting for then sends nothing early', async () => {
    const { calls, flushes, delayed, clock, pub } = make({ intervalMs: 5 });
    void pub('a');
    flushes[0]!();
    clock.now = 1;
    const many = Array.from({ length: MAX_MESSAGES }, (_, i) => pub(`m${i}`));
    expect(calls.map((c) => c.length)).toEqual([1, MAX_MESSAGES]); // cut at the bound, not held
    const after = pub('z'); // the interval starts again from the call just sent
    expect(delayed.map(([, ms]) => ms)).toEqual([4, 5]);
    delayed[0]![0](); // the stale wait: does not send 'z' before its own interval ends
    flushes.at(-1)!();
    expect(calls).toHaveLength(2);
    clock.now = 6;
    delayed[1]![0]();
    flushes.at(-1)!();
    expect(calls.at(-1)).toEqual(['z']);
    expect(await after).toEqual([1, 'z@3']);
    expect(await Promise.all(many)).toHaveLength(MAX_MESSAGES);
  });

  it('the connection drops mid-batch: outcome_unknown for exactly the calls in flight, unavailable for what was not sent', async () => {
    let connected = true;
    const inFlight: ((err: Error) => void)[] = [];
    const { calls, flushes, failures, pub } = make({
      ready: () => connected,
      answer: (_keys, call) =>
        call === 1
          ? new Promise((_, reject) => inFlight.push(reject))
          : Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false")),
    });
    const sent = [pub('a', 1), pub('b', 2)];
    flushes[0]!(); // written on a ready connection, not answered yet
    const queued = [pub('a', 3), pub('c', 4)];
    connected = false; // the connection breaks: the call in flight fails, the next turn's is refused unsent
    inFlight[0]!(new Error('Connection is closed.'));
    flushes[1]!();
    expect(await Promise.all(sent)).toEqual(['outcome_unknown 1', 'outcome_unknown 2']);
    expect(await Promise.all(queued)).toEqual(['unavailable 3', 'unavailable 4']);
    // Only the call in flight was sent (and failed); the next turn's was not sent at all.
    expect(calls).toHaveLength(1);
    expect(failures).toHaveLength(1);
  });

  it('a call whose master connection is coming up waits for it, then goes in order; one it never comes up for is not sent', async () => {
    const waits: ((sent: boolean) => void)[] = [];
    const { calls, flushes, pub } = make({ ready: () => new Promise<boolean>((r) => waits.push(r)) });
    const first = [pub('a', 1), pub('a', 2)];
    flushes[0]!();
    const second = [pub('a', 3)];
    flushes[1]!();
    await Promise.resolve();
    expect(calls).toHaveLength(0); // nothing written while the connection is not up
    waits[0]!(true);
    waits[1]!(true);
    expect(await Promise.all([...first, ...second])).toEqual([[1, 'a@1'], [2, 'a@1'], [1, 'a@2']]);
    expect(calls).toEqual([['a', 'a'], ['a']]);
    const never = pub('a', 4);
    flushes[2]!();
    waits[2]!(false);
    expect(await never).toBe('unavailable 4');
    expect(calls).toHaveLength(2);
  });

  it('a call that times out on a ready connection is outcome_unknown for each of its messages, and noted', async () => {
    const { flushes, failures, pub } = make({ answer: () => Promise.reject(new Error('Command timed out')) });
    const answers = Promise.all([pub('a', 1), pub('a', 2)]);
    flushes[0]!();
    expect(await answers).toEqual(['outcome_unknown 1', 'outcome_unknown 2']);
    expect(String(failures[0])).toContain('Command timed out');
  });
});

describe('ScriptRunner', () => {
  it('a call answered NOSCRIPT before a later one that ran is refused as Redis not answering (unavailable), the later one stands', async () => {
    // Redis lost its scripts (SCRIPT FLUSH); another client loaded the script again before `b` reached it. Callers
    // other than publishes (a name claim, an MQTT session's) take the refusal as Redis not answering, not as a fault.
    const answers: ((v: unknown) => void)[] = [];
    const fails: ((e: Error) => void)[] = [];
    const conn = {
      eval: async () => 'loaded',
      evalsha: () => new Promise((resolve, reject) => (answers.push(resolve), fails.push(reject))),
    };
    const runner = new ScriptRunner(conn as unknown as ScriptConnection, () => '');
    await runner.run('return 1', ['k'], []); // loaded: the next calls go as EVALSHA
    const a = runner.run('return 1', ['k'], ['a']).then(() => 'ran', (e: Error) => e);
    const b = runner.run('return 1', ['k'], ['b']).then(() => 'ran', (e: Error) => e);
    await new Promise((r) => setImmediate(r));
    fails[0]!(new Error('NOSCRIPT No matching script. Please use EVAL.'));
    answers[1]!('ok');
    const [ra, rb] = await Promise.all([a, b]);
    expect(rb).toBe('ran');
    expect(ra).toBeInstanceOf(Error);
    expect(isRedisDown(ra)).toBe(true);
  });

  it('a call with the script\'s text (the first on a connection, a retry after NOSCRIPT) takes the asText arguments; one by SHA the plain ones', async () => {
    // The publish script's lineage mode rides on this: 'load' (INFO, rewrite the lineage key) whenever the text goes.
    const sent: string[] = [];
    let noscript = false;
    const conn = {
      eval: async (_lua: string, _n: number, ...rest: string[]) => (sent.push(`EVAL ${rest.at(-1)}`), 'ok'),
      evalsha: async (_sha: string, _n: number, ...rest: string[]) => {
        sent.push(`EVALSHA ${rest.at(-1)}`);
        if (noscript) {
          noscript = false;
          throw new Error('NOSCRIPT No matching script. Please use EVAL.');
        }
        return 'ok';
      },
    };
    const runner = new ScriptRunner(conn as unknown as ScriptConnection, () => '');
    const asText = (args: string[]) => [...args.slice(0, -1), 'load'];
    await runner.run('return 1', ['k'], ['trust'], asText);
    await runner.run('return 1', ['k'], ['trust'], asText);
    noscript = true; // SCRIPT FLUSH, a restart or a failover: the script cache is empty
    await runner.run('return 1', ['k'], ['trust'], asText); // (a retry does not mark the script loaded: the next goes with it too)
    await runner.run('return 1', ['k'], ['trust'], asText);
    await runner.run('return 1', ['k'], ['trust'], asText);
    runner.forget(); // the connection closed: the Redis it reaches next may be another
    await runner.run('return 1', ['k'], ['trust'], asText);
    expect(sent).toEqual(['EVAL load', 'EVALSHA trust', 'EVALSHA trust', 'EVAL load', 'EVAL load', 'EVALSHA trust', 'EVAL load']);
  });
});

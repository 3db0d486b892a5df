// A resume whose topic was trimmed past the client's position (more messages than --history since it) is
// `history_trimmed`: the ack says recovered:false and names the miss, and what the broker still holds of the topic
// after the position follows the ack, in seq order (docs/protocol.md, Positions and resume). Over real sockets, on the
// memory engine and on two cluster nodes sharing Redis (published on one, resumed on the other): a raw `sub` with
// since 0, with a position, a wildcard with a map; the client library's `history: true`, and its resume after a cut.
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchboardClient, type Message, type Recovery } from '@switchboard/client';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient, type Frame } from './helpers/client.js';
import { CuttingProxy, until } from './client/proxy.js';
import { requireRedis, startNode, TestRedis } from './cluster/redis.js';

const HISTORY = 3;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function connect(url: string): Promise<TestClient> {
  const c = await TestClient.connect(url);
  cleanup.push(() => c.close());
  return c;
}

/** The client library, reconnecting after a cut at a fixed ~1 s (time to publish while it is away, also on a busy machine). */
function library(url: string): SwitchboardClient {
  const c = new SwitchboardClient({ url, backoff: { minMs: 1000, maxMs: 1000, factor: 1 }, random: () => 0.999, requestTimeoutMs: 5000 });
  cleanup.push(() => c.close());
  return c;
}

/** Publishes `n` messages to `topic` (data 1…n after `from`), each acknowledged; returns the acks. */
async function publish(pub: TestClient, topic: string, n: number, from = 0): Promise<Frame[]> {
  const acks: Frame[] = [];
  for (let i = 1; i <= n; i++) acks.push(await pub.request({ op: 'pub', topic, data: from + i }));
  return acks;
}

/** Sends `sub` and returns its ack and the messages that followed it (up to a ping barrier). */
async function resume(c: TestClient, frame: Record<string, unknown>): Promise<{ ack: Frame; msgs: Frame[] }> {
  const before = c.all.length;
  const ack = await c.request({ op: 'sub', ...frame });
  await c.quiet(() => false);
  const after = c.all.slice(before);
  const at = after.indexOf(ack);
  // Nothing of the replay comes before the verdict.
  expect(after.slice(0, at).filter((f) => f.op === 'msg')).toEqual([]);
  return { ack, msgs: after.slice(at + 1).filter((f) => f.op === 'msg') };
}

const seqsOf = (msgs: Frame[], topic: string) => msgs.filter((m) => m.topic === topic).map((m) => m.seq as number);

/** The scenarios, given where to publish and where to resume (the same broker, or two cluster nodes). */
function scenarios(setup: () => Promise<{ pubUrl: string; subUrl: string; subPort: number }>): void {
  it('since 0: recovered false, missed history_trimmed, positions at 5, then exactly 3, 4, 5', async () => {
    const { pubUrl, subUrl } = await setup();
    const pub = await connect(pubUrl);
    await publish(pub, 't', 5);
    const c = await connect(subUrl);
    const { ack, msgs } = await resume(c, { topic: 't', since: 0 });
    expect(ack).toMatchObject({ op: 'ack', recovered: false, reason: 'history_trimmed', missed: { t: 'history_trimmed' }, positions: { t: { seq: 5 } } });
    expect(msgs.map((m) => [m.topic, m.seq, m.data])).toEqual([
      ['t', 3, 3],
      ['t', 4, 4],
      ['t', 5, 5],
    ]);
    // Live messages follow.
    await publish(pub, 't', 1, 5);
    expect(await c.next((f) => f.op === 'msg' && f.seq === 6)).toMatchObject({ data: 6 });
  });

  it('since 1 with its epoch: the same (2 is gone, 3–5 are held)', async () => {
    const { pubUrl, subUrl } = await setup();
    const pub = await connect(pubUrl);
    const [first] = await publish(pub, 't', 5);
    const c = await connect(subUrl);
    const { ack, msgs } = await resume(c, { topic: 't', since: 1, epoch: first!.epoch });
    expect(ack).toMatchObject({ recovered: false, missed: { t: 'history_trimmed' }, positions: { t: { seq: 5, epoch: first!.epoch } } });
    expect(msgs.map((m) => m.seq)).toEqual([3, 4, 5]);
    // A position inside the history is exact as ever; a wrong epoch replays nothing.
    const exact = await resume(c, { topic: 't', since: 3, epoch: first!.epoch });
    expect(exact.ack).toMatchObject({ recovered: true });
    expect(exact.msgs.map((m) => m.seq)).toEqual([4, 5]);
    const other = await resume(c, { topic: 't', since: 1, epoch: 'not-the-epoch.1' });
    expect(other.ack).toMatchObject({ recovered: false, missed: { t: 'epoch_changed' } });
    expect(other.msgs).toEqual([]);
  });

  it('a wildcard with a map: a trimmed topic replays what is held, the others are exact', async () => {
    const { pubUrl, subUrl } = await setup();
    const pub = await connect(pubUrl);
    const a = await publish(pub, 'w/a', 6);
    const b = await publish(pub, 'w/b', 4);
    await publish(pub, 'w/c', 2);
    const c = await connect(subUrl);
    const epoch = { 'w/a': a[0]!.epoch, 'w/b': b[0]!.epoch };
    const { ack, msgs } = await resume(c, { topic: 'w/+', since: { 'w/a': 2, 'w/b': 2 }, epoch });
    expect(ack).toMatchObject({ recovered: false, missed: { 'w/a': 'history_trimmed' }, positions: { 'w/a': { seq: 6 }, 'w/b': { seq: 4 }, 'w/c': { seq: 2 } } });
    expect(ack.missed['w/b']).toBeUndefined();
    expect(seqsOf(msgs, 'w/a')).toEqual([4, 5, 6]);
    expect(seqsOf(msgs, 'w/b')).toEqual([3, 4]);
    expect(seqsOf(msgs, 'w/c')).toEqual([1, 2]); // no position, all of it held: replayed whole
    // Each topic's replay in seq order, and no topic twice.
    expect(msgs.length).toBe(new Set(msgs.map((m) => `${m.topic}#${m.seq}`)).size);
  });

  it('the client library: history: true says notRecovered history_trimmed, then yields 3, 4, 5 and live 6', async () => {
    const { pubUrl, subUrl } = await setup();
    const pub = await connect(pubUrl);
    await publish(pub, 't', 5);
    const client = library(subUrl);
    const sub = await client.subscribe<number>('t', { history: true });
    expect(sub.recovery).toMatchObject({ recovered: false, reason: 'history_trimmed', missed: { t: 'history_trimmed' }, positions: { t: { seq: 5 } } });
    // Its saved positions claim nothing it was not handed yet.
    expect(sub.positions.t).toBeUndefined();
    const it = sub[Symbol.asyncIterator]();
    const got: number[] = [];
    for (let i = 0; i < 3; i++) got.push((await it.next()).value!.seq);
    expect(got).toEqual([3, 4, 5]);
    expect(sub.positions.t).toMatchObject({ seq: 5 });
    await publish(pub, 't', 1, 5);
    const live = (await it.next()).value!;
    expect([live.seq, live.data]).toEqual([6, 6]);
    expect(sub.buffered).toBe(0);
  });

  it('the client library: cut while 10 are published, it resumes history_trimmed and gets the held ones, never a duplicate', async () => {
    const { pubUrl, subPort } = await setup();
    const pub = await connect(pubUrl);
    const proxy = await CuttingProxy.start(subPort);
    cleanup.push(() => proxy.close());
    const client = library(proxy.url);
    const sub = await client.subscribe<number>('t');
    const got: Message<number>[] = [];
    sub.on('message', (m) => got.push(m));
    const verdicts: Recovery[] = [];
    sub.on('notRecovered', (r) => verdicts.push(r));
    sub.on('recovered', (r) => verdicts.push(r));
    await publish(pub, 't', 2);
    await until(() => got.length === 2, 'the first two');
    // Cut; ten published while it is away (it reconnects after ~1 s): the broker holds the last three of them.
    const away = new Promise<void>((resolve) => client.once('disconnected', () => resolve()));
    proxy.cut();
    await away;
    await publish(pub, 't', 10, 2);
    await until(() => verdicts.length === 1 && client.state === 'connected', 'the resume');
    expect(verdicts[0]).toMatchObject({ recovered: false, reason: 'history_trimmed', missed: { t: 'history_trimmed' }, positions: { t: { seq: 12 } } });
    await until(() => got.length === 5, 'the held ones');
    await publish(pub, 't', 1, 12);
    await until(() => got.length === 6, 'the live one');
    expect(got.map((m) => m.seq)).toEqual([1, 2, 10, 11, 12, 13]);
    expect(got.map((m) => m.data)).toEqual([1, 2, 10, 11, 12, 13]);
    expect(sub.positions.t).toMatchObject({ seq: 13 });
    // Cut again with nothing published meanwhile: recovered, nothing again.
    const again = new Promise<void>((resolve) => client.once('disconnected', () => resolve()));
    proxy.cut();
    await again;
    await until(() => verdicts.length === 2 && client.state === 'connected', 'the second resume');
    expect(verdicts[1]).toMatchObject({ recovered: true });
    await publish(pub, 't', 1, 13);
    await until(() => got.length === 7, 'the live one after');
    expect(got.map((m) => m.seq)).toEqual([1, 2, 10, 11, 12, 13, 14]);
  });
}

describe('history_trimmed replays what is held (memory engine)', () => {
  let broker: TestBroker;
  scenarios(async () => {
    broker = await startTestBroker({ historySize: HISTORY });
    cleanup.push(() => broker.close());
    return { pubUrl: broker.url, subUrl: broker.url, subPort: broker.port };
  });
});

describe('history_trimmed with a replay that does not fit', () => {
  it('nothing of the topic is replayed, the miss stays history_trimmed; the client library takes the next live one', async () => {
    // A mailbox of 4: a resume may replay 2 messages at most (half of it), the 3 held do not fit.
    const broker = await startTestBroker({ historySize: HISTORY, mailboxSize: 4 });
    cleanup.push(() => broker.close());
    const pub = await connect(broker.url);
    await publish(pub, 't', 5);
    const c = await connect(broker.url);
    const { ack, msgs } = await resume(c, { topic: 't', since: 0 });
    expect(ack).toMatchObject({ recovered: false, missed: { t: 'history_trimmed' }, positions: { t: { seq: 5 } } });
    expect(msgs).toEqual([]);
    const client = library(broker.url);
    const sub = await client.subscribe<number>('t', { history: true });
    expect(sub.recovery).toMatchObject({ recovered: false, missed: { t: 'history_trimmed' } });
    const got: number[] = [];
    sub.on('message', (m) => got.push(m.seq));
    await publish(pub, 't', 1, 5);
    await until(() => got.length === 1, 'the live one');
    expect(got).toEqual([6]);
    expect(sub.positions.t).toMatchObject({ seq: 6 });
  });
});

const withRedis = requireRedis('history_trimmed replay on a cluster');
describe.skipIf(!withRedis)('history_trimmed replays what is held (Redis engine, two nodes)', () => {
  scenarios(async () => {
    const redis = await TestRedis.start();
    cleanup.push(() => redis.stop());
    const a = await startNode(redis, { historySize: HISTORY });
    cleanup.push(() => a.close());
    const b = await startNode(redis, { historySize: HISTORY });
    cleanup.push(() => b.close());
    return { pubUrl: a.url, subUrl: b.url, subPort: b.port };
  });
});

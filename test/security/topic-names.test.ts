// The names of remembered topics are bounded in bytes (--topic-names-bytes), as history is (issue 19, item 7).
// Before: 300,000 distinct 16-segment topics pushed the heap to 1.44 GB although only 100,000 were remembered:
// each topic kept 16 trie nodes, live or forgotten. Over the budget, forgotten names go first (then no resume
// vouches for topics it can no longer name), then the least recently published topics; positions stay truthful.
// The heap figure itself is measured by `npm run attacks -- --only names` (docs/security.md).
import { describe, expect, it, afterEach } from 'vitest';
import { History, TRIE_NODE_BYTES } from '../../src/engine/history.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';

/** A 16-segment topic whose first segment is its own: 16 trie nodes of its own. */
const long = (i: number) => `n${i}/` + Array.from({ length: 15 }, (_, k) => `s${k}`).join('/');
const limits = { perTopic: 10, maxTopics: 100_000, topicBytes: 1 << 20, totalBytes: 16 << 20 };
const seenNothing = () => ({ seq: 0, listed: false });
const replay = { maxTopics: 1000, maxMessages: 1000, maxBytes: 1 << 20 };

describe('History: topic names within a byte budget', () => {
  it('never over the budget; the oldest topics are forgotten, and a resume says what it can no longer vouch for', () => {
    const budget = 256 * 1024;
    const h = new History<string>({ ...limits, namesBytes: budget }, (m) => m.length);
    const epochs: string[] = [];
    for (let i = 0; i < 5000; i++) {
      epochs.push(h.append(long(i), () => 'x').epoch);
      expect(h.namesBytes).toBeLessThanOrEqual(budget);
    }
    // 16 nodes a topic: about budget / (16 × a node) topics fit.
    expect(h.topicCount).toBeLessThan(budget / (16 * TRIE_NODE_BYTES) + 1);
    expect(h.topicCount).toBeGreaterThan(budget / (16 * (TRIE_NODE_BYTES + 4)) - 2);
    // The newest is remembered, the first is not (nor its name): a position on it cannot be checked.
    expect(h.position(long(4999))).toMatchObject({ seq: 1 });
    const first = h.resume(long(0), false, () => ({ seq: 1, epoch: epochs[0], listed: true }), replay);
    expect([...first.missed]).toEqual([[long(0), 'unknown_position']]);
    // Names were lost: a wildcard resume no longer vouches for the topics it may not name.
    const all = h.resume('#', true, seenNothing, replay, true);
    expect(all.missed.get('#')).toBe('unknown_position');
  });

  it('within the budget nothing is lost: a wildcard resume that saw nothing is recovered', () => {
    const h = new History<string>({ ...limits, namesBytes: 64 << 20 }, (m) => m.length);
    for (let i = 0; i < 1000; i++) h.append(long(i), () => 'x');
    expect(h.topicCount).toBe(1000);
    // Each topic: 16 nodes of its own, and its segments' characters.
    const expected = [...Array(1000).keys()].reduce((n, i) => n + 16 * TRIE_NODE_BYTES + long(i).length - 15, 0);
    expect(h.namesBytes).toBe(expected);
    expect(h.resume('#', true, seenNothing, replay, true).missed.size).toBe(0);
  });

  it('forgotten names are dropped before live topics', () => {
    // 20 live topics at most (--max-topics 20); the budget fits ~40 topics' names: forgotten ones make room.
    const h = new History<string>({ ...limits, maxTopics: 20, namesBytes: 40 * 16 * (TRIE_NODE_BYTES + 4) }, (m) => m.length);
    for (let i = 0; i < 500; i++) h.append(long(i), () => 'x');
    expect(h.topicCount).toBe(20); // every live topic kept: only forgotten names were dropped
    for (let i = 480; i < 500; i++) expect(h.position(long(i))).toMatchObject({ seq: 1 });
    expect(h.namesBytes).toBeLessThanOrEqual(40 * 16 * (TRIE_NODE_BYTES + 4));
  });
});

describe('--topic-names-bytes on a broker', () => {
  let broker: TestBroker | undefined;
  afterEach(async () => {
    await broker?.close();
    broker = undefined;
  });

  it('distinct long topics keep the names within the setting; a resume over them is not recovered', async () => {
    broker = await startTestBroker({ topicNamesBytes: 65_536 });
    const c = await TestClient.connect(broker.url);
    const first = await c.request({ op: 'sub', topic: '#' });
    for (let i = 0; i < 200; i++) c.send({ op: 'pub', topic: long(i), data: i, echo: false });
    expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(broker.hub.inspect.historyNamesBytes()).toBeLessThanOrEqual(65_536);
    expect(broker.hub.inspect.historyTopicCount()).toBeLessThan(200);
    const ack = await c.request({ op: 'sub', topic: 'n1/#', since: 0, life: first.life });
    expect(ack).toMatchObject({ op: 'ack', recovered: false, missed: { 'n1/#': 'unknown_position' } });
    c.close();
  });
});

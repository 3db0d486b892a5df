// The in-memory engine's publish keys are bounded in time, in count and in bytes — by refusing new keys, never by
// forgetting one still in its window (its retry would publish again, unflagged: a review helper's finding), and per
// publisher to a sixteenth of the bounds, so one client's flood of keys refuses that client's keyed publishes only.
import { afterEach, describe, expect, it } from 'vitest';
import { PublishKeys } from '../../src/engine/idempotency.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';

describe('PublishKeys', () => {
  it('answers a retry within the window with the first position, and forgets it after', () => {
    let now = 1000;
    const keys = new PublishKeys(60_000, 10, () => now);
    keys.set('a/b', 'k1', { seq: 7, epoch: 'e1' });
    expect(keys.get('a/b', 'k1')).toEqual({ seq: 7, epoch: 'e1', delivered: 0, duplicate: true });
    expect(keys.get('a/c', 'k1')).toBeUndefined(); // keys are per topic
    now += 60_000;
    expect(keys.get('a/b', 'k1')).toBeUndefined();
    expect(keys.size).toBe(0);
    expect(keys.byteSize).toBe(0);
  });

  it('full: a new key is refused, every key in its window is still answered; expired ones make room', () => {
    let now = 0;
    const keys = new PublishKeys(60_000, 32, () => now, 1_000_000);
    for (let i = 0; i < 32 + 8; i++) keys.set('x', `k${i}`, { seq: i + 1, epoch: 'e' }); // the server's own (''): the bound and its reserve
    expect(keys.refusal('x', 'new', '')).toMatch(/too many publish keys/);
    for (let i = 0; i < 32 + 8; i++) expect(keys.get('x', `k${i}`)).toMatchObject({ seq: i + 1, duplicate: true });
    now += 60_000;
    expect(keys.refusal('x', 'new', '')).toBeUndefined();
    expect(keys.size).toBe(0);
  });

  it('one publisher holds at most a sixteenth (count and bytes): its flood refuses its own keys, not another\'s', () => {
    const keys = new PublishKeys(60_000, 1600, Date.now, 1_600_000);
    let mine = 0;
    while (keys.refusal('t', `k${mine}`.padEnd(128, 'k'), 'c1') === undefined) keys.set('t', `k${mine++}`.padEnd(128, 'k'), { seq: mine, epoch: 'e' }, 'c1');
    expect(mine).toBeLessThanOrEqual(100);
    expect(keys.byteSize).toBeLessThanOrEqual(1_600_000 / 16);
    expect(keys.refusal('t', 'other', 'c2')).toBeUndefined();
  });

  it('sixteen flooders fill the bounds; a client holding few keys still finds room (the reserve), up to 64 keys', () => {
    const keys = new PublishKeys(60_000, 1600, Date.now, 1_600_000);
    for (let c = 1; c <= 16; c++) {
      for (let i = 0; keys.refusal('t', `c${c}-${i}`, `c${c}`) === undefined; i++) keys.set('t', `c${c}-${i}`, { seq: 1, epoch: 'e' }, `c${c}`);
    }
    expect(keys.size).toBe(1600);
    // A seventeenth flooder, and a neighbour: each gets 64 keys from the reserve, then is refused.
    let neighbour = 0;
    while (keys.refusal('t', `n-${neighbour}`, 'n') === undefined) keys.set('t', `n-${neighbour++}`, { seq: 1, epoch: 'e' }, 'n');
    expect(neighbour).toBe(64);
    expect(keys.refusal('t', 'n-more', 'n')).toMatch(/too many publish keys/);
    expect(keys.refusal('t', 'someone', 'other')).toBeUndefined();
  });
});

describe('publish keys over WebSocket', () => {
  let broker: TestBroker | undefined;
  afterEach(async () => {
    await broker?.close();
    broker = undefined;
  });

  it('a retry within the window stays a duplicate however many keyed publishes a neighbour sends; the flooder is refused', async () => {
    broker = await startTestBroker({ rate: 0 });
    const sub = await TestClient.connect(`${broker.url}/orders/41`);
    const b = await TestClient.connect(broker.url);
    const a = await TestClient.connect(broker.url);
    const first = await b.request({ op: 'pub', topic: 'orders/41', data: { paid: true }, key: 'order-41-paid' });
    // Long topics and keys (~870 bytes counted each): a sixteenth of 16 MiB is ~1,200 of them.
    const topic = 't/' + 'x'.repeat(60) + '/' + 'y'.repeat(60) + '/' + 'z'.repeat(60) + '/' + 'w'.repeat(60);
    for (let i = 0; i < 2000; i++) a.send({ op: 'pub', topic, data: 0, key: `${i}`.padStart(128, 'k'), id: i });
    const last = await a.next((f) => f.id === 1999, 30_000);
    expect(last).toMatchObject({ op: 'error', code: 'unavailable' });
    const retry = await b.request({ op: 'pub', topic: 'orders/41', data: { paid: true }, key: 'order-41-paid' });
    expect(retry).toMatchObject({ seq: first.seq, duplicate: true });
    expect(await b.request({ op: 'pub', topic: 'orders/41', data: { paid: 2 }, key: 'order-41-shipped' })).toMatchObject({ op: 'ack', seq: 2 });
    await sub.next((f) => f.op === 'msg' && f.seq === 2);
    expect(sub.all.filter((f) => f.op === 'msg').map((f) => f.seq)).toEqual([1, 2]);
  }, 60_000);
});

// Interest (src/engine/redis/interest.ts) on its own: which channels a filter needs, one SUBSCRIBE per event-loop
// turn, the linger before UNSUBSCRIBE, and a channel wanted again while it is being dropped. A recording listener
// stands in for the Redis subscriber connection (the cluster tests run the real one).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { channelsFor, familyOf, FAMILIES, Interest, publishChannels, SHARDED, type Listener } from '../../../src/engine/redis/interest.js';
import { KEYS, PARTITIONS, partitionTag } from '../../../src/engine/redis/keys.js';
import { keySlot } from '../../../src/engine/redis/outcome.js';

class Recorder implements Listener {
  readonly calls: string[] = [];
  private gate: (() => void) | undefined;
  /** While held, UNSUBSCRIBE does not answer until release(). */
  hold = false;
  subscribe(...channels: string[]): Promise<unknown> {
    this.calls.push(`sub ${channels.join(' ')}`);
    return Promise.resolve();
  }
  unsubscribe(...channels: string[]): Promise<unknown> {
    this.calls.push(`unsub ${channels.join(' ')}`);
    if (!this.hold) return Promise.resolve();
    return new Promise<void>((r) => (this.gate = r));
  }
  release(): void {
    this.gate?.();
  }
}


describe('Interest: channels of a filter', () => {
  it('an exact filter: its topic; a literal first level: its family; a wildcard first level: every family', () => {
    expect(channelsFor('room/1')).toEqual(['sb:t:room/1']);
    expect(channelsFor('sensors/+/temp')).toEqual([`sb:f:${familyOf('sensors')}`]);
    expect(channelsFor('sensors/#')).toEqual([`sb:f:${familyOf('sensors')}`]);
    expect(channelsFor('#')).toHaveLength(FAMILIES);
    expect(channelsFor('+/temp')).toHaveLength(FAMILIES);
    // What a filter listens on carries every topic it matches.
    for (const [filter, topic] of [['sensors/+/temp', 'sensors/k1/temp'], ['a/#', 'a'], ['#', 'x/y'], ['room/1', 'room/1']] as const) {
      const [t, f] = publishChannels(topic);
      expect(channelsFor(filter).some((c) => c === t || c === f)).toBe(true);
    }
  });

  it('sharded (a Redis Cluster): a topic\'s channels are in its keys\' slot; a wildcard listens on its family in every partition', () => {
    for (const topic of ['room/1', 'sensors/k1/temp', '}odd', 'a{b}c', 'x']) {
      const slot = keySlot(KEYS.meta(topic));
      expect(SHARDED.publish(topic).map(keySlot)).toEqual([slot, slot]);
      expect(keySlot(KEYS.log(topic))).toBe(slot);
    }
    expect(SHARDED.listen('room/1')).toEqual([SHARDED.publish('room/1')[0]]);
    expect(SHARDED.listen('sensors/+/temp')).toHaveLength(PARTITIONS);
    expect(SHARDED.listen('#')).toHaveLength(PARTITIONS * FAMILIES);
    for (const [filter, topic] of [['sensors/+/temp', 'sensors/k1/temp'], ['a/#', 'a'], ['#', 'x/y'], ['+/y', 'x/y'], ['room/1', 'room/1']] as const) {
      const [t, f] = SHARDED.publish(topic);
      expect(SHARDED.listen(filter).some((c) => c === t || c === f)).toBe(true);
    }
    // The partitions' tags spread evenly over the slots: a band of 16384 / PARTITIONS slots each.
    for (let k = 0; k < PARTITIONS; k++) expect(Math.floor(keySlot(partitionTag(k)) / (16384 / PARTITIONS))).toBe(k);
  });

  it('families spread first levels: 1,000 names fill most of the 64', () => {
    const used = new Set(Array.from({ length: 1000 }, (_, i) => familyOf(`level${i}/x`)));
    expect(used.size).toBeGreaterThan(60);
  });
});

describe('Interest: subscribing and dropping', () => {
  // The linger runs on vitest's fake clock: advanced by the test, to the millisecond, whatever the machine's load.
  afterEach(() => void vi.useRealTimers());

  it('the wants of one turn are one SUBSCRIBE; ready() resolves once it is answered', async () => {
    const r = new Recorder();
    const dropped: string[][] = [];
    const i = new Interest({ listener: r, lingerMs: 20, dropped: (c) => dropped.push(c), failed: () => undefined });
    i.want('a/1');
    i.want('a/2');
    i.want('b/#');
    expect(i.receives('a/1')).toBe(false);
    await i.ready('a/1');
    expect(r.calls).toEqual([`sub sb:t:a/1 sb:t:a/2 sb:f:${familyOf('b')}`]);
    expect(i.receives('a/1')).toBe(true);
    expect(i.receives('b/anything')).toBe(true);
    expect(i.receives('c/1')).toBe(false);
    i.close();
  });

  it('released: kept for the linger (a quick resubscribe costs nothing), then dropped in one UNSUBSCRIBE', async () => {
    vi.useFakeTimers();
    const r = new Recorder();
    const dropped: string[][] = [];
    const i = new Interest({ listener: r, lingerMs: 30, dropped: (c) => dropped.push(c), failed: () => undefined });
    i.want('a/1');
    i.want('a/2');
    await i.ready('a/1');
    i.release('a/1');
    i.want('a/1'); // back within the linger
    i.release('a/2');
    await vi.advanceTimersByTimeAsync(20);
    expect(r.calls).toEqual(['sub sb:t:a/1 sb:t:a/2']); // within the linger
    await vi.advanceTimersByTimeAsync(10);
    expect(r.calls).toEqual(['sub sb:t:a/1 sb:t:a/2', 'unsub sb:t:a/2']);
    expect(dropped).toEqual([['sb:t:a/2']]);
    expect(i.list()).toEqual(['sb:t:a/1']);
    i.close();
  });

  it('wanted again while its UNSUBSCRIBE is in flight: subscribed again, and ready() waits for that', async () => {
    vi.useFakeTimers();
    const r = new Recorder();
    r.hold = true;
    const i = new Interest({ listener: r, lingerMs: 10, dropped: () => undefined, failed: () => undefined });
    i.want('t');
    await i.ready('t');
    i.release('t');
    await vi.advanceTimersByTimeAsync(10); // the linger: the sweep sent UNSUBSCRIBE; not answered yet
    expect(r.calls).toEqual(['sub sb:t:t', 'unsub sb:t:t']);
    i.want('t');
    let ready = false;
    void i.ready('t').then(() => (ready = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(ready).toBe(false); // must not claim to listen while the UNSUBSCRIBE may still land after it
    r.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(r.calls).toEqual(['sub sb:t:t', 'unsub sb:t:t', 'sub sb:t:t']);
    expect(ready).toBe(true);
    expect(i.receives('t')).toBe(true);
    i.close();
  });

  it('a failed SUBSCRIBE is reported and does not leave requests waiting', async () => {
    const failed: string[] = [];
    const listener: Listener = { subscribe: () => Promise.reject(new Error('Connection is closed.')), unsubscribe: () => Promise.resolve() };
    const i = new Interest({ listener, lingerMs: 10, dropped: () => undefined, failed: (e) => failed.push(e.message) });
    i.want('x');
    await i.ready('x');
    expect(failed).toEqual(['Connection is closed.']);
    i.close();
  });
});

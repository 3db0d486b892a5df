// The protocol core over the in-memory parts answers every request within the call that hands it over (no promise,
// no microtask: the fast path stays synchronous), and its chaining helpers run a step at once unless an answer is a
// promise. Fake sessions record what is queued for them; nothing here awaits between a request and its check.
import { describe, expect, it } from 'vitest';
import { MemoryEngine } from '../../src/engine/memory.js';
import { after, each, lastly } from '../../src/engine/seam.js';
import { nameAtJoin } from '../../src/engine/rules.js';
import { fake, OPTIONS, type Fake } from './fakes.js';

describe('the protocol core over the in-memory parts', () => {
  it('answers join, pub, sub with a position, who, rename, send, unsub, ping and a server publish within the call', () => {
    const engine = new MemoryEngine<Fake>(OPTIONS);
    const a = fake('c901');
    const b = fake('c902');
    engine.join(a, { name: 'alice' });
    engine.join(b, { topics: ['t'], presenceTopics: ['room'] });
    expect(a.frames).toMatchObject([{ op: 'hello', client: { name: 'alice' } }]);
    expect(b.frames[0]).toMatchObject({ op: 'hello' });

    engine.handle(a, { op: 'pub', topic: 't', data: 1, id: 1 });
    expect(b.frames.at(-1)).toMatchObject({ op: 'msg', topic: 't', seq: 1 });
    expect(a.frames.at(-1)).toMatchObject({ op: 'ack', id: 1, seq: 1, delivered: 1 });

    engine.handle(a, { op: 'sub', topic: 't', since: 0, id: 2 });
    expect(a.frames.at(-2)).toMatchObject({ op: 'ack', id: 2, recovered: true });
    expect(a.frames.at(-1)).toMatchObject({ op: 'msg', topic: 't', seq: 1 }); // the replay, right behind its ack

    engine.handle(a, { op: 'sub', topic: 'room', id: 3 });
    expect(b.frames.at(-1)).toMatchObject({ op: 'event', event: 'join', topic: 'room', client: { name: 'alice' } });
    engine.handle(a, { op: 'rename', name: 'alicia', id: 4 });
    expect(a.frames.at(-1)).toMatchObject({ op: 'ack', id: 4, name: 'alicia' });
    expect(b.frames.at(-1)).toMatchObject({ op: 'event', event: 'rename', old: 'alice', client: { name: 'alicia' } });

    engine.handle(a, { op: 'who', id: 5 });
    expect(a.frames.at(-1)).toMatchObject({ op: 'ack', id: 5 });
    engine.handle(b, { op: 'send', to: 'alicia', data: 'hi', id: 6 });
    expect(a.frames.at(-1)).toMatchObject({ op: 'direct', from: { id: 'c902' }, data: 'hi' });
    expect(b.frames.at(-1)).toMatchObject({ op: 'ack', id: 6 });

    engine.handle(a, { op: 'unsub', topic: 'room', id: 7 });
    expect(b.frames.at(-1)).toMatchObject({ op: 'event', event: 'leave', topic: 'room' });
    engine.ping(a, 8);
    expect(a.frames.at(-1)).toEqual({ op: 'pong', id: 8 });

    const published = engine.publish('t', 2);
    expect(published).not.toBeInstanceOf(Promise);
    expect(published).toMatchObject({ seq: 2, delivered: 2 });
    expect(b.frames.at(-1)).toMatchObject({ op: 'msg', seq: 2 });

    engine.leave(a, 'leave');
    expect(engine.inspect.isConnected(a)).toBe(false);
  });

  it('gives a joining client a free default name when the one it asks for is taken, and says why', () => {
    const engine = new MemoryEngine<Fake>(OPTIONS);
    const a = fake('c911');
    const b = fake('c912');
    engine.join(a, { name: 'dup' });
    engine.join(b, { name: 'dup' });
    expect(b.frames[0]).toMatchObject({ op: 'hello', client: { name: 'guest-912' } });
    expect(b.frames[1]).toMatchObject({ op: 'error', code: 'name_taken' });
  });
});

describe('chaining over answers that may be promises', () => {
  it('after, each and lastly run at once on plain values, and wait for promises', async () => {
    const order: string[] = [];
    expect(after(1, (v) => v + 1)).toBe(2);
    expect(each([1, 2], (v) => void order.push(`sync ${v}`))).toBeUndefined();
    expect(lastly(() => 'done', () => order.push('finished'))).toBe('done');
    expect(order).toEqual(['sync 1', 'sync 2', 'finished']);

    const later = after(Promise.resolve(1), (v) => v + 1);
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toBe(2);
    const chained = each([1, 2, 3], (v) => (v === 2 ? Promise.resolve().then(() => void order.push(`async ${v}`)) : void order.push(`sync ${v}`)));
    expect(order.at(-1)).toBe('sync 1'); // 2 has not answered yet, so 3 waits
    await chained;
    expect(order.slice(-3)).toEqual(['sync 1', 'async 2', 'sync 3']);
    await expect(lastly(() => Promise.reject(new Error('no')), () => order.push('finished again'))).rejects.toThrow('no');
    expect(order.at(-1)).toBe('finished again');
  });

  it('nameAtJoin takes the asked name, else the first free default, with a claim that answers now or later', async () => {
    const taken = new Set(['bob', 'guest', 'guest-2']);
    const now = (name: string) => !taken.has(name);
    expect(nameAtJoin('ann', 'guest', now)).toEqual({ name: 'ann', problem: null });
    expect(nameAtJoin('bob', 'guest', now)).toMatchObject({ name: 'guest-3', problem: { code: 'name_taken' } });
    expect(nameAtJoin('', 'guest', now)).toMatchObject({ name: 'guest-3', problem: { code: 'bad_name' } });
    const later = (name: string) => Promise.resolve(!taken.has(name));
    expect(await nameAtJoin('bob', 'guest', later)).toMatchObject({ name: 'guest-3', problem: { code: 'name_taken' } });
    expect(await nameAtJoin(undefined, 'guest', later)).toEqual({ name: 'guest-3', problem: null });
  });
});

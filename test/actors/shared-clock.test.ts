// SharedClock: the one timer wheel of the connection actors' systems. Driven by vitest's fake timers (its `now` reads
// the faked Date), so what fires when is exact.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor, createMachine } from 'xstate';
import { SharedClock } from '../../src/actors/shared-clock.js';

describe('SharedClock', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires each callback at its time, in due order, same-ms ones in the order they were set, with one Node timer', () => {
    const clock = new SharedClock(() => Date.now());
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('c300'), 300);
    clock.setTimeout(() => fired.push('a100'), 100);
    clock.setTimeout(() => fired.push('b100'), 100);
    clock.setTimeout(() => fired.push('d0'), 0); // at least 1 ms, as Node's
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(0);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['d0']);
    vi.advanceTimersByTime(98);
    expect(fired).toEqual(['d0']);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['d0', 'a100', 'b100']);
    vi.advanceTimersByTime(200);
    expect(fired).toEqual(['d0', 'a100', 'b100', 'c300']);
    expect(clock.pending).toBe(0);
    expect(vi.getTimerCount()).toBe(0); // nothing pending: no Node timer keeps the process alive
  });

  it('a cleared callback never fires; clearing the last one disarms; clearing twice or a foreign id is harmless', () => {
    const clock = new SharedClock(() => Date.now());
    const fired: string[] = [];
    const a = clock.setTimeout(() => fired.push('a'), 50);
    const b = clock.setTimeout(() => fired.push('b'), 80);
    clock.clearTimeout(a);
    clock.clearTimeout(a);
    clock.clearTimeout(undefined);
    clock.clearTimeout(setTimeout(() => undefined, 1));
    expect(clock.pending).toBe(1);
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(['b']);
    clock.clearTimeout(b); // already fired
    const c = clock.setTimeout(() => fired.push('c'), 10);
    clock.clearTimeout(c);
    expect(clock.pending).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a callback set while firing waits for its own time; a throwing callback does not stop the others', () => {
    const thrown: unknown[] = [];
    const clock = new SharedClock(() => Date.now(), (error) => thrown.push(error));
    const fired: string[] = [];
    clock.setTimeout(() => {
      fired.push('first');
      clock.setTimeout(() => fired.push('again'), 0);
      throw new Error('boom');
    }, 10);
    clock.setTimeout(() => fired.push('second'), 10);
    vi.advanceTimersByTime(10);
    expect(fired).toEqual(['first', 'second']);
    expect(thrown).toEqual([new Error('boom')]); // reported once the others ran (by default: thrown on its own tick)
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['first', 'second', 'again']);
  });

  it('many cleared entries are compacted away, and the rest still fire in order', () => {
    const clock = new SharedClock(() => Date.now());
    const fired: number[] = [];
    const ids = Array.from({ length: 5000 }, (_, i) => clock.setTimeout(() => fired.push(i), 1000 + (i % 97)));
    for (let i = 0; i < 5000; i++) if (i % 10 !== 0) clock.clearTimeout(ids[i]);
    expect(clock.pending).toBe(500);
    expect((clock as unknown as { heap: unknown[] }).heap.length).toBeLessThan(2 * 500 + 1024);
    vi.advanceTimersByTime(2000);
    const expected = Array.from({ length: 500 }, (_, k) => k * 10).sort((x, y) => 1000 + (x % 97) - (1000 + (y % 97)) || x - y);
    expect(fired).toEqual(expected);
  });

  it('runs an xstate machine\'s delayed transitions (the clock option of createActor)', () => {
    const clock = new SharedClock(() => Date.now());
    const machine = createMachine({ initial: 'a', states: { a: { after: { 100: 'b' } }, b: { after: { 50: 'c' } }, c: { on: { BACK: 'a' } } } });
    const actor = createActor(machine, { clock }).start();
    vi.advanceTimersByTime(99);
    expect(actor.getSnapshot().value).toBe('a');
    vi.advanceTimersByTime(1);
    expect(actor.getSnapshot().value).toBe('b');
    actor.stop(); // cancels its pending delay through clearTimeout
    expect(clock.pending).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});

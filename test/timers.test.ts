// The timer index: an actor that finishes has its own pending delayed events cancelled (as xstate does),
// while every other actor's timers in the same system still fire.
import { describe, expect, it } from 'vitest';
import { createActor, raise, setup } from 'xstate';
import { indexTimersByActor } from '../src/actors/timers.js';

const child = setup({}).createMachine({
  initial: 'waiting',
  // One delayed event under a fixed id, one under xstate's random id: both outlive the state that made them.
  entry: [raise({ type: 'TICK' }, { delay: 40, id: 'tick' }), raise({ type: 'TOCK' }, { delay: 40 })],
  states: {
    waiting: { on: { LEAVE: 'left', TICK: 'ticked' } },
    ticked: { on: { TOCK: 'tocked' } },
    tocked: { type: 'final' },
    left: { type: 'final' },
  },
});
const parent = setup({}).createMachine({});
const pending = (root: { system: { getSnapshot(): { _scheduledEvents: object } } }) => Object.keys(root.system.getSnapshot()._scheduledEvents).length;

describe('indexTimersByActor', () => {
  it('a finished actor leaves no pending timers; the others in the system still fire', async () => {
    const root = createActor(parent);
    indexTimersByActor(root.system);
    root.start();
    const actors = Array.from({ length: 40 }, () => createActor(child, { parent: root }));
    for (const a of actors) a.start();
    expect(pending(root)).toBe(80);
    const leaving = actors.filter((_, i) => i % 2 === 0);
    for (const a of leaving) a.send({ type: 'LEAVE' });
    expect(pending(root)).toBe(40);
    await new Promise((r) => setTimeout(r, 200));
    for (const a of actors) expect(a.getSnapshot().value).toBe(leaving.includes(a) ? 'left' : 'tocked');
    expect(pending(root)).toBe(0);
  });

  it('is idempotent', () => {
    const root = createActor(parent);
    indexTimersByActor(root.system);
    const once = root.system.scheduler.cancelAll;
    indexTimersByActor(root.system);
    expect(root.system.scheduler.cancelAll).toBe(once);
  });
});

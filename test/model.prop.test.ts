// Properties of the reference model itself, no sockets: if the model were wrong, the checker would
// certify a wrong broker. Random scenarios from the checker's own command arbitraries drive it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { commandArbitraries, requestFrame, type CheckCommand, type Naming, type Step } from '../src/check/commands.js';
import { ProtocolModel, type Expected, type Outcome, type Slot } from '../src/protocol/model.js';
import { filterMatches } from '../src/protocol/topic.js';

const naming: Naming = { topic: (t) => t, name: (n) => n, epoch: () => undefined };

interface Observed {
  cmd: CheckCommand;
  before: ProtocolModel;
  outcome: Outcome;
}

/** Runs `steps` on a fresh model (ids c1, c2… as a broker would give), reporting each executed step. */
function drive(steps: Step[], see: (s: Observed, model: ProtocolModel) => void): void {
  const model = new ProtocolModel({ historySize: 3 });
  let ids = 0;
  steps.forEach((step, n) => {
    if (!step.check(model)) return;
    const cmd = step.resolve(model);
    const before = structuredClone(model);
    Object.setPrototypeOf(before, ProtocolModel.prototype);
    let outcome: Outcome;
    const id = `k${n}`;
    switch (cmd.op) {
      case 'connect':
        ids++;
        outcome = model.connect(cmd.slot, { id: `c${ids}`, addr: `127.0.0.1:${4000 + ids}`, transport: 'ws' }, {
          ...(cmd.name !== undefined && { name: cmd.name }),
          ...(cmd.topics !== undefined && { topics: cmd.topics }),
        });
        break;
      case 'quit':
        outcome = model.frame(cmd.slot, { op: 'quit', id });
        break;
      case 'drop':
        outcome = model.disconnect(cmd.slot);
        break;
      case 'bad':
        outcome = model.reject(cmd.slot, 'bad_frame');
        break;
      default:
        outcome = model.frame(cmd.slot, requestFrame(cmd, id, model, naming));
    }
    see({ cmd, before, outcome }, model);
  });
}

const scenarios = fc.array(fc.oneof(...commandArbitraries), { minLength: 1, maxLength: 60 });
const framesOf = (o: Outcome, op: string): [Slot, Expected][] => [...o.frames].flatMap(([s, fs]) => fs.filter((f) => f.op === op).map((f): [Slot, Expected] => [s, f]));
const liveSlots = (m: ProtocolModel) => m.liveSlots();

describe('protocol model', () => {
  it('numbers each topic 1, 2, 3… with no gap, and every subscriber sees increasing seqs per topic', () => {
    fc.assert(
      fc.property(scenarios, (steps) => {
        const acked = new Map<string, number>();
        const seen = new Map<string, number>(); // slot+topic → last seq
        drive(steps, ({ cmd, outcome }) => {
          if (cmd.op === 'pub' && !cmd.topic.includes('+')) {
            // Every valid publish takes the next seq; a notification (no id) just is not told which.
            const prev = acked.get(cmd.topic) ?? 0;
            const ack = outcome.frames.get(cmd.slot)?.find((f) => f.op === 'ack');
            if (cmd.notify) expect(ack).toBeUndefined();
            else expect(ack?.seq).toBe(prev + 1);
            acked.set(cmd.topic, prev + 1);
          }
          for (const [slot, msg] of framesOf(outcome, 'msg')) {
            const key = `${slot} ${String(msg.topic)}`;
            // Replays of `sub` with `since` restart a client's view of a topic; live traffic never goes back.
            if (cmd.op !== 'sub') expect(msg.seq as number).toBeGreaterThan(seen.get(key) ?? 0);
            seen.set(key, msg.seq as number);
          }
        });
      }),
      { numRuns: 300 },
    );
  });

  it('delivers a publish exactly once to each live client with a matching filter (overlaps included), echo aside', () => {
    fc.assert(
      fc.property(scenarios, (steps) => {
        drive(steps, ({ cmd, before, outcome }) => {
          if (cmd.op !== 'pub' || cmd.topic.includes('+')) return;
          const msgs = framesOf(outcome, 'msg');
          const want = liveSlots(before).filter(
            (s) => before.client(s)!.filters.some((f) => filterMatches(f, cmd.topic)) && !(s === cmd.slot && cmd.echo === false),
          );
          expect(msgs.map(([s]) => s).sort()).toEqual(want.sort());
          const ack = outcome.frames.get(cmd.slot)?.find((f) => f.op === 'ack');
          if (cmd.notify) expect(ack).toBeUndefined();
          else expect(ack?.delivered).toBe(want.length);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('keeps names unique among live clients (renames, connect names and default names included)', () => {
    fc.assert(
      fc.property(scenarios, (steps) => {
        drive(steps, (_, model) => {
          const names = liveSlots(model).map((s) => model.client(s)!.name);
          expect(new Set(names).size).toBe(names.length);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('presence: a watcher that applies its join/leave events tracks exactly the clients holding that filter', () => {
    fc.assert(
      fc.property(scenarios, (steps) => {
        const tracked = new Map<string, Set<string>>(); // `${slot} ${filter}` → ids it believes hold the filter
        const holders = (m: ProtocolModel, filter: string) =>
          new Set(liveSlots(m).filter((s) => m.client(s)!.filters.includes(filter)).map((s) => m.client(s)!.id));
        drive(steps, ({ before, outcome }, model) => {
          // Start tracking from what held the filter before the step in which a client starts watching it.
          for (const w of liveSlots(model)) {
            for (const f of model.client(w)!.watching) {
              const key = `${w} ${f}`;
              const wasWatching = before.isLive(w) && before.client(w)!.watching.includes(f) && before.client(w)!.id === model.client(w)!.id;
              if (!wasWatching) tracked.set(key, holders(before, f));
            }
          }
          for (const [w, ev] of framesOf(outcome, 'event')) {
            const key = `${w} ${String(ev.topic)}`;
            const set = tracked.get(key);
            // Only watchers get events: "presence = the subscribers with presence:true".
            expect(set, `event to a non-watcher: ${JSON.stringify(ev)}`).toBeDefined();
            const id = (ev.client as { id: string }).id;
            if (ev.event === 'join') set!.add(id);
            if (ev.event === 'leave' || ev.event === 'timeout') set!.delete(id);
          }
          for (const key of [...tracked.keys()]) {
            const [w, f] = [Number(key.split(' ')[0]), key.slice(key.indexOf(' ') + 1)];
            if (!model.isLive(w) || !model.client(w)!.watching.includes(f)) {
              tracked.delete(key);
              continue;
            }
            expect([...tracked.get(key)!].sort()).toEqual([...holders(model, f)].sort());
          }
        });
      }),
      { numRuns: 300 },
    );
  });
});
